// Group-relative advantages for GRPO (Shao et al. 2024, "DeepSeekMath", arXiv:2402.03300, sec. 4.1.2).
//
// The G completions sampled for one prompt form a group; each completion's advantage is its reward
// relative to the group:
//   A_i = (r_i - mean_g(r)) / (std_g(r) + eps)      (scale_by_std = true)
//   A_i =  r_i - mean_g(r)                          (scale_by_std = false: Liu et al. 2025,
//                                                    "Understanding R1-Zero-Like Training" (Dr. GRPO))
// std_g is the population standard deviation sqrt((1/G) sum_i (r_i - mean)^2). A group whose
// rewards are all equal carries no learning signal and gets exactly 0 (not 0 / eps noise).
#pragma once

#include <cstdint>
#include <vector>

#include "train/loss.h"

namespace flywheel {

// rewards: G consecutive entries per group (groups in order). Throws unless group_size >= 1 divides
// rewards.size(), every reward is finite, and eps is finite and >= 0.
std::vector<float> group_normalized_advantages(const std::vector<double>& rewards, int64_t group_size,
                                               double eps = 1e-6, bool scale_by_std = true);

// Sets batch.advantage[r, t] = row_advantage[r] on the row's mask tokens and 0 elsewhere, so the
// advantage is constant over each row's completion. row_advantage has batch.rows entries.
void set_row_advantages(LossBatch& batch, const std::vector<float>& row_advantage);

}  // namespace flywheel
