// Batch building: which samples a step sees and how they become next-token-prediction rows.
//
// Everything is a function of (seed, global sample index): a step's rows are global indices
// [first, first + rows), so splitting them across ranks (each building its own slice) gives
// exactly the rows one rank would have built -- the mesh never changes what is trained on.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "data/data_source.h"

namespace flywheel {

// Next-token prediction batch, row-major [rows, seq].
struct Batch {
  int64_t rows = 0, seq = 0;
  std::vector<int32_t> tokens;   // inputs; PAD where the sequence has ended
  std::vector<int32_t> targets;  // tokens shifted left by one; PAD where nothing is predicted
  std::vector<float> loss_mask;  // 1 where the target counts in the loss, else 0
  int64_t loss_tokens() const;   // number of ones in loss_mask
};

class Sampler {
 public:
  // `source` must outlive the sampler. seq_len is the row length; a sample longer than
  // seq_len + 1 tokens is cut at the end (make_data_source already does so for its sources).
  Sampler(const DataSource& source, uint64_t seed, int64_t seq_len);

  // Dataset index for a global sample index: for finite sources a fresh permutation per
  // epoch (epoch = g / size, Fisher-Yates keyed by (seed, RngPurpose::kDataShuffle, epoch));
  // for generated sources the index itself.
  int64_t dataset_index(int64_t global_index) const;

  // Rows are global sample indices first, first+1, ..., first+rows-1. A sample x[0..n) with
  // loss_start s fills inputs x[0..n-2], targets x[1..n-1], and loss_mask[t] = 1 iff t+1 >= s;
  // positions past the sample are PAD input, PAD target, mask 0. Every row holds a loss token: a
  // sample without one throws (the sources of make_data_source never yield one).
  Batch make_batch(int64_t first_global_index, int64_t rows) const;

 private:
  std::shared_ptr<const std::vector<int64_t>> permutation_for(int64_t epoch) const;

  const DataSource& source_;
  uint64_t seed_;
  int64_t seq_len_;
  int64_t source_size_;  // cached: 0 for a generated source

  // The permutation of the most recently used epoch. Building one is O(size), so caching it
  // keeps batch building O(rows) amortized; shared_ptr lets a reader keep using it after
  // another thread moves the cache on to the next epoch.
  mutable std::mutex cache_mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::shared_ptr<const std::vector<int64_t>> cached_permutation_;
};

// Fisher-Yates permutation of 0..size-1 keyed by (seed, RngPurpose::kDataShuffle, epoch).
std::vector<int64_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t size);

}  // namespace flywheel
