// Read-only access to one committed checkpoint step, for offline tools (flywheel-ckpt).
//
// Unlike load_checkpoint this never changes the run directory (load removes stale *.partial
// directories, which for a tool pointed at a live run would delete a save in progress) and never
// falls back to another step (a tool asked for step N must read N or say why not). It reuses the
// loader's pieces: state.h5 reader, shard checksums, shard tensor lists, coverage check, row reads.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/checksum.h"
#include "ckpt/h5_handle.h"
#include "ckpt/shard_layout.h"
#include "ckpt/state_file.h"

namespace flywheel {

struct ShardCheck {
  int shard = 0;
  std::string path;
  FileDigest expected;   // from state.h5
  std::string problem;   // empty: present, size and XXH3-64 match, header and tensor list readable
  std::vector<ShardPiece> pieces;
};

struct StepCheck {
  int64_t step = 0;
  std::string dir;
  std::optional<StateRecord> record;  // nullopt when state.h5 is unusable (problems says why)
  std::vector<ShardCheck> shards;     // one per shard recorded in state.h5
  std::vector<std::string> problems;  // step-level: state.h5, tensor coverage across shards
  std::string view_problem;           // model.h5 missing or unreadable (loading does not need it)
  PieceIndex index;                   // every piece of every good shard

  bool ok() const;  // no step-level or shard problem (view_problem not counted)
  // Every problem, one per line, shard problems naming the file.
  std::vector<std::string> all_problems() const;
};

// Bytes check_step will hash: the shard sizes state.h5 records (0 when it is unreadable).
uint64_t step_check_bytes(const std::string& run_dir, int64_t step);

// Checks a committed step like load_checkpoint does, and more strictly (each shard's rank /
// world_size / step attributes must match its place). on_bytes gets each hashed block's size.
StepCheck check_step(const std::string& run_dir, int64_t step, const std::function<void(uint64_t)>& on_bytes = {});

// Whole tensors (or row ranges) of a checked step, read straight from its shards.
class StepReader {
 public:
  // Throws naming the step directory and its problems when !checked.ok().
  explicit StepReader(StepCheck checked);

  const StepCheck& check() const { return check_; }
  const StateRecord& record() const { return *check_.record; }
  // Tensor names of an array group ("weight", "adam_m", "adam_v"), sorted.
  std::vector<std::string> names(const std::string& group) const;
  bool has(const std::string& group, const std::string& name) const;
  const std::vector<int64_t>& global_shape(const std::string& group, const std::string& name) const;

  // Rows [row_begin, row_end) of /group/name into dst (row-major). Throws naming the tensor.
  void read_rows(const std::string& group, const std::string& name, int64_t row_begin, int64_t row_end, float* dst);
  std::vector<float> read(const std::string& group, const std::string& name);  // the whole tensor

 private:
  const std::vector<ShardPiece>& pieces(const std::string& group, const std::string& name) const;
  hid_t shard_file(int shard);  // opened on first use, kept open

  StepCheck check_;
  std::map<int, H5Handle> open_;
};

}  // namespace flywheel
