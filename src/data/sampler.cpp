#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/error.h"
#include "core/rng.h"
#include "data/tokenizer.h"

namespace flywheel {

int64_t Batch::loss_tokens() const {
  return std::count_if(loss_mask.begin(), loss_mask.end(), [](float m) { return m != 0.0f; });
}

std::vector<int64_t> epoch_permutation(uint64_t seed, int64_t epoch, int64_t size) {
  FW_CHECK(size > 0, "permutation size ", size, " must be > 0");
  FW_CHECK(epoch >= 0, "epoch ", epoch, " must be >= 0");
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), int64_t{0});
  CounterRng rng(RngKey{seed, RngPurpose::kDataShuffle, static_cast<uint64_t>(epoch), 0});
  for (int64_t i = size - 1; i > 0; --i) {
    const auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

Sampler::Sampler(const DataSource& source, uint64_t seed, int64_t seq_len)
    : source_(source), seed_(seed), seq_len_(seq_len), source_size_(source.size()) {
  FW_CHECK(seq_len >= 1, "sampler seq_len=", seq_len, " must be >= 1");
  FW_CHECK(source_size_ >= 0, "data source ", source.describe(), " reports size ", source_size_,
           "; sizes are >= 0 (0 = generated)");
}

std::shared_ptr<const std::vector<int64_t>> Sampler::permutation_for(int64_t epoch) const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (epoch != cached_epoch_) {
    cached_permutation_ = std::make_shared<const std::vector<int64_t>>(
        epoch_permutation(seed_, epoch, source_size_));
    cached_epoch_ = epoch;
  }
  return cached_permutation_;
}

int64_t Sampler::dataset_index(int64_t global_index) const {
  FW_CHECK(global_index >= 0, "global sample index ", global_index, " is negative; indices start at 0");
  if (source_size_ == 0) return global_index;
  const int64_t epoch = global_index / source_size_;
  return (*permutation_for(epoch))[static_cast<size_t>(global_index % source_size_)];
}

namespace {

// Writes one sample into row `row` of a batch already filled with PAD / PAD / 0. A row without a
// loss token would make a step that trains on nothing: every data source drops or refuses such
// samples up front (make_data_source), so one here is a source's bug.
void fill_row(Batch& batch, int64_t row, const TokenizedSample& sample, const DataSource& source, int64_t index) {
  const auto n = static_cast<int64_t>(sample.tokens.size());
  const int64_t predictions = std::min(n - 1, batch.seq);  // cut at the end if too long
  const int64_t offset = row * batch.seq;
  int64_t targets = 0;
  for (int64_t t = 0; t < predictions; ++t) {
    batch.tokens[offset + t] = sample.tokens[t];
    batch.targets[offset + t] = sample.tokens[t + 1];
    batch.loss_mask[offset + t] = sample.is_target(static_cast<size_t>(t + 1)) ? 1.0f : 0.0f;
    targets += sample.is_target(static_cast<size_t>(t + 1));
  }
  FW_CHECK(targets > 0, "sample ", index, " of ", source.describe(), " keeps no loss token in a row of ", batch.seq,
           " tokens (", n, " tokens)");
}

}  // namespace

Batch Sampler::make_batch(int64_t first_global_index, int64_t rows) const {
  FW_CHECK(rows >= 0, "batch rows=", rows, " must be >= 0");
  Batch batch;
  batch.rows = rows;
  batch.seq = seq_len_;
  const auto cells = static_cast<size_t>(rows * seq_len_);
  batch.tokens.assign(cells, ByteTokenizer::kPad);
  batch.targets.assign(cells, ByteTokenizer::kPad);
  batch.loss_mask.assign(cells, 0.0f);
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t index = dataset_index(first_global_index + row);
    fill_row(batch, row, source_.sample(index), source_, index);
  }
  return batch;
}

}  // namespace flywheel
