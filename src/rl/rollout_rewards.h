// Rewards of one RL step's samples: the task's own checker (rl.reward = task), or an external
// scorer (rl.reward = file): the rollouts go to <run>/rollouts/step-<N>.jsonl, the command
// `<rl.reward_command> IN OUT` writes OUT with a "reward" per line (format: src/rl/rollout_file.h),
// and the rewards are read back, every line checked against what was written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "rl/flywheel_spec.h"
#include "rl/rollout_coordinator.h"

namespace flywheel {

std::vector<double> compute_rewards(const FlywheelSpec& spec, int64_t step, const std::vector<RolloutSample>& samples,
                                    const std::filesystem::path& run_dir);

}  // namespace flywheel
