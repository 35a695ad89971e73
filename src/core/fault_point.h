// Named fault points for the failure tests: FLYWHEEL_FAULT_POINT="NAME:RANK:STEP[:USR1]" makes that
// rank's process die by SIGKILL (or, with :USR1, receive SIGUSR1 -- a preemption notice) when it
// reaches fault_point(NAME, rank, step). Points: "checkpoint.shard_written" (in the middle of a save:
// this rank's shard is durable, nothing committed) and "train.step" (a step boundary, before the
// ranks agree on preemption).
// Unset: one getenv on the first call, then a compare per call.
#pragma once

#include <cstdint>

namespace flywheel {

void fault_point(const char* name, int rank, int64_t step);

}  // namespace flywheel
