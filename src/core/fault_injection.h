// Fault injection for the failure-path tests (tests/fault/): one rank fails at one step so we can
// check that the whole job ends promptly with that rank's message instead of hanging in a collective.
//
//   FLYWHEEL_FAULT_INJECT="rank=R,step=S[,mode=throw|kill]"
//
// mode=throw (default): rank R throws flywheel::Error("injected fault on rank R at step S") at the
// start of 0-based step S, which takes main()'s error path (message, MPI_Abort).
// mode=kill: rank R raises SIGKILL at that point: no message, no MPI_Abort; the launcher must notice.
// Unset or empty: nothing happens (one getenv at the first step, then a cached compare per step).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace flywheel {

struct FaultSpec {
  enum class Mode { kThrow, kKill };
  int rank = -1;
  int64_t step = -1;
  Mode mode = Mode::kThrow;
};

// Parses the variable's value; throws flywheel::Error naming the bad part (a typo must not silently
// disable the fault a test relies on). Empty -> nullopt.
std::optional<FaultSpec> parse_fault_spec(std::string_view text);

// Called at the top of every Trainer::train_step with the world rank and the 0-based step.
void maybe_inject_fault(int rank, int64_t step);

}  // namespace flywheel
