// The replica side of hot-loading (docs/hot-load.md): bring a replica's weights to a published
// step, by applying the step's delta in place when it is exactly one step ahead of what is loaded,
// else by loading the newest full snapshot and replaying the deltas after it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "serve/snapshot_format.h"

namespace flywheel {

struct LoadInfo {
  int64_t step = -1;  // now loaded (may be < requested_step when no intact chain reaches it)
  bool applied_delta = false;  // the requested step's delta was applied over what was loaded
  bool fell_back = false;      // the direct path failed (or the step was not reached): see reason
  std::string reason;          // why it fell back, empty otherwise
  uint64_t bytes_read = 0;     // snapshot file bytes read (mapped and verified)
  double ms = 0;
  // Beyond the integrator's minimum: how the step was reached.
  int64_t requested_step = -1;
  int64_t full_step = -1;   // the full snapshot loaded, -1 when only a delta was applied
  int deltas_replayed = 0;  // deltas applied after full_step
};

class SnapshotLoader {  // runs on a serving replica
 public:
  SnapshotLoader(std::string publish_dir, ServeDtype dtype);

  // Brings `tensors` (the replica's weights, stored in the serve dtype: f32, or bf16 in 2 bytes) to
  // `step`: if the file for `step` is a delta whose base is the currently loaded step
  // and everything verifies, XOR-apply it in place; otherwise (wrong base, missing / truncated /
  // corrupt file, checksum mismatch, tensor set / shape mismatch) load the newest usable full
  // snapshot <= step and replay the chain of deltas after it up to `step` while they are intact
  // (reason says what happened). A delta whose result checksum fails is undone (XOR is its own
  // inverse) before falling back, so tensors are never left half-updated. Throws flywheel::Error
  // naming the files and what was wrong only if no usable full snapshot exists (tensors are then
  // unchanged unless a full snapshot that passed its file checksum failed while being decoded).
  LoadInfo load(int64_t step, const std::vector<NamedTensor>& tensors);
  int64_t loaded_step() const { return loaded_step_; }  // -1 before the first load
  uint64_t loaded_checksum() const { return loaded_checksum_; }

 private:
  std::string try_delta(const SnapshotFile& file, int64_t base, uint64_t base_checksum,
                        const std::vector<NamedTensor>& tensors);
  void load_full_or_fall_back(int64_t step, const std::vector<NamedTensor>& tensors, LoadInfo& info);

  std::string dir_;
  ServeDtype dtype_;
  int64_t loaded_step_ = -1;
  uint64_t loaded_checksum_ = 0;
  // Each frame's digest of the held weights, for files laid out as digest_layout_ (empty: unknown).
  std::vector<uint64_t> digests_;
  std::vector<SnapshotTensor> digest_layout_;
};

}  // namespace flywheel
