// The trainer side of hot-loading (docs/hot-load.md): after an optimizer step one trainer rank
// writes the weights, in the serving dtype, to publish/step-<N>.full or step-<N>.delta. Replicas
// are then told the step (over MPI, by the caller) and read the file with SnapshotLoader.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "serve/snapshot_format.h"

namespace flywheel {

struct PublishInfo {
  int64_t step = 0;
  bool full = true;
  int64_t base_step = -1;  // -1 for full
  std::string path;
  uint64_t file_bytes = 0;
  uint64_t full_bytes = 0;  // size a full snapshot in this dtype would have, uncompressed (numel x dtype bytes)
  uint64_t checksum = 0;    // the result checksum (snapshot_format.h: XXH3-64 of the frames' digests)
  double ms = 0;
};

class SnapshotPublisher {  // runs on one trainer rank
 public:
  SnapshotPublisher(std::string publish_dir, ServeDtype dtype, int64_t full_every /*K >= 1*/, int keep_full = 2);

  // Writes publish/step-<N>.full or step-<N>.delta atomically (write tmp, fsync, rename, fsync
  // dir); full when nothing was published in this process yet (or the previous file is gone, or
  // the tensor set changed) or (steps since the last full) >= K; else an XOR delta against the
  // previous published step. Steps must increase. On the first publish of a process, files of
  // steps >= N left by an earlier incarnation of the trainer (a timeline it abandoned when it
  // resumed from a checkpoint) are deleted. Old files: keep the newest keep_full full snapshots
  // and every delta after the oldest kept full; delete the rest.
  // Tensors are f32 (rounded to the serve dtype here) or already in the serve dtype. unchanged (optional, one
  // entry per tensor): the caller's word that tensor t holds what the previous publish of this process did (a LoRA
  // run's frozen base): a delta then writes its frames as zero frames without reading it; a full reads it anyway.
  PublishInfo publish(int64_t step, const std::vector<NamedTensor>& tensors, const std::vector<bool>& unchanged = {});

  // Makes the next publish a full snapshot whatever K says (e.g. a replica fell back and is behind:
  // a full lets every replica catch up in one load instead of a replay).
  void force_full_next() { force_full_ = true; }

  // zstd level for the frames (default 1: see docs/hot-load.md for 1 vs 3).
  void set_zstd_level(int level);
  ServeDtype dtype() const { return dtype_; }

 private:
  void encode_payload(const std::vector<NamedTensor>& tensors, const std::vector<SnapshotTensor>& table, bool full,
                      const std::vector<bool>& unchanged, class SnapshotWriter& writer);
  void remove_stale(int64_t step);
  void apply_retention();

  std::string dir_;
  ServeDtype dtype_;
  int64_t full_every_;
  int keep_full_;
  int zstd_level_ = 1;
  bool force_full_ = false;
  // The last published serve-dtype bytes (tensors in table order): the base of the next delta.
  // Costs numel x dtype bytes of host memory, the price of not re-reading the chain from disk.
  std::vector<uint8_t> published_;
  std::vector<uint64_t> published_digests_;  // each frame's digest of published_ (a zero delta frame keeps its own)
  std::vector<SnapshotTensor> published_table_;
  int64_t last_step_ = -1, last_full_step_ = -1;
  uint64_t last_checksum_ = 0;
  std::string last_path_;
};

}  // namespace flywheel
