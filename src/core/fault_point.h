// Named crash points for the failure tests: FLYWHEEL_FAULT_POINT="NAME:RANK:STEP" makes the process of
// that rank die by SIGKILL when it reaches fault_point(NAME, rank, step) -- e.g. in the middle of
// writing a checkpoint ("checkpoint.shard_written": this rank's shard is durable, nothing committed).
// Unset: one getenv on the first call, then a compare per call.
#pragma once

#include <cstdint>

namespace flywheel {

void fault_point(const char* name, int rank, int64_t step);

}  // namespace flywheel
