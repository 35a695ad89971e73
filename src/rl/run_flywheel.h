// `flywheel run`: trainers and serving replicas in one job. SFT warm-up, then GRPO on rollouts that
// the replicas generate from hot-loaded snapshots of the weights being trained (docs/rl.md).
#pragma once

#include "rl/flywheel_spec.h"
#include "parallel/mesh.h"

namespace flywheel {

// Every world rank calls it; trainer ranks train, serving ranks serve. Returns the exit code
// (core/signals.h: 0, 74 checkpoint failed, 75 preempted).
int run_flywheel(const FlywheelSpec& spec, Mesh& mesh);

}  // namespace flywheel
