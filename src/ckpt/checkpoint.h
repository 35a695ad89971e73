// Sharded HDF5 checkpoints with a crash-safe commit (format: docs/checkpoint-format.md).
//
//   run_dir/step-00000120/   shard-%05d.h5 per rank, model.h5 (virtual whole tensors), state.h5
//   run_dir/latest           "step-00000120": the newest committed step
//
// Both calls are collective over `comm` (every rank calls them, in the same order). A failure on
// any rank throws on every rank, so no rank is left waiting in a collective.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/tensor_slice.h"
#include "comm/comm.h"

namespace flywheel {

inline constexpr int64_t kCheckpointFormatVersion = 1;

// What besides tensors a resume needs. All ranks pass the same state to save_checkpoint.
struct CheckpointState {
  int64_t step = 0;  // the step the tensors are after (>= 0); names the directory
  uint64_t seed = 0;
  std::string shape_text;                           // the resolved shape file, verbatim
  nlohmann::json mesh = nlohmann::json::object();   // {"pp":..,"fsdp":..,"cp":..,"ep":..,"serve":..}
  nlohmann::json extra = nlohmann::json::object();  // data cursor, RNG counters, ... (caller-defined)
};

// Writes step-<step>.partial/, renames it to step-<step>/ once every file is durable, points
// `latest` at it, then deletes the oldest committed steps so that keep_last remain (keep_last <= 0:
// keep all; the step just saved is never deleted). Each rank saves its `slices` (zero-row slices
// write nothing); across ranks, the slices of each tensor must cover every row exactly once.
// Saving a step that is already committed replaces it.
void save_checkpoint(Comm& comm, const std::string& run_dir, const CheckpointState& state,
                     const std::vector<TensorSlice>& slices, int keep_last);

// save_checkpoint for offline tools: one process writes every shard of a world of
// per_rank_slices.size() ranks (shard r holds per_rank_slices[r]), with the same layout checks, file
// writers and commit protocol (step-N.partial, fsyncs, rename, `latest`, retention) as the
// collective save. Used by `flywheel-ckpt reshard` to write a checkpoint laid out for another mesh.
// on_shard_written (optional) gets each shard's number and size once it is durable (progress).
void save_checkpoint_offline(const std::string& run_dir, const CheckpointState& state,
                             const std::vector<std::vector<TensorSlice>>& per_rank_slices, int keep_last,
                             const std::function<void(int shard, uint64_t bytes)>& on_shard_written = {});

// Committed steps (directories step-NNNNNNNN, not *.partial) in increasing order; empty when
// run_dir does not exist. Does not verify them.
std::vector<int64_t> committed_steps(const std::string& run_dir);

struct LoadResult {
  CheckpointState state;  // as saved (state.step is the step loaded)
  int64_t step = 0;
  std::string step_dir;    // run_dir/step-NNNNNNNN
  int64_t world_size = 0;  // ranks that wrote it (number of shard files)
};

// Loads `step`, or with nullopt the step named by `latest` (else the newest committed). Every shard
// file is checked against the size and XXH3-64 in state.h5; a step with a missing, truncated or
// corrupt file is skipped with a warning naming the file, falling back to the next older committed
// step; throws when none is loadable. Then fills every non-null weight/adam_m/adam_v of `slices`
// from whichever shards hold those rows, so any row split can load any other. Throws (on every
// rank) when a tensor is absent, its global shape differs, or requested rows are not covered.
LoadResult load_checkpoint(Comm& comm, const std::string& run_dir, std::optional<int64_t> step,
                           std::vector<TensorSlice>& slices);

}  // namespace flywheel
