// Verifying a committed step before any tensor is read: state.h5 must be readable, and every
// shard file must exist with exactly the size and XXH3-64 recorded in state.h5. The shard files are
// split across ranks (shard i is checked by rank i mod ranks); all ranks then share the verdict
// and the list of what each shard holds.
#pragma once

#include <optional>
#include <string>

#include "ckpt/shard_layout.h"
#include "ckpt/state_file.h"
#include "comm/comm.h"

namespace flywheel {

struct VerifiedStep {
  int64_t step = 0;
  std::string dir;
  StateRecord record;
  PieceIndex index;  // every piece of every shard, from the files' own attributes
};

// Collective. nullopt (on every rank) with `reason` set when the step is not loadable; the rank
// that found each problem logs a warning naming the file.
std::optional<VerifiedStep> verify_step(Comm& comm, const std::string& run_dir, int64_t step, std::string& reason);

}  // namespace flywheel
