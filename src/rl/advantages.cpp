// Group-relative advantages: see advantages.h.
#include "rl/advantages.h"

#include <cmath>

#include "core/error.h"

namespace flywheel {

std::vector<float> group_normalized_advantages(const std::vector<double>& rewards, int64_t group_size,
                                               double eps, bool scale_by_std) {
  FW_CHECK(group_size >= 1, "group_size=", group_size, " must be >= 1");
  const auto count = static_cast<int64_t>(rewards.size());
  FW_CHECK(count % group_size == 0, "group_size=", group_size, " does not divide the ", count,
           " rewards; each prompt's group needs exactly group_size samples");
  FW_CHECK(std::isfinite(eps) && eps >= 0, "advantage eps=", eps, " must be finite and >= 0");
  for (int64_t i = 0; i < count; ++i)
    FW_CHECK(std::isfinite(rewards[i]), "reward ", i, " = ", rewards[i], " is not finite");

  std::vector<float> advantages(rewards.size(), 0.0f);
  for (int64_t g0 = 0; g0 < count; g0 += group_size) {
    bool all_equal = true;
    double mean = 0;
    for (int64_t i = g0; i < g0 + group_size; ++i) {
      all_equal = all_equal && rewards[i] == rewards[g0];
      mean += rewards[i];
    }
    if (all_equal) continue;  // exactly 0: (r - mean) would be rounding noise amplified by 1/eps
    mean /= static_cast<double>(group_size);
    double var = 0;
    for (int64_t i = g0; i < g0 + group_size; ++i) var += (rewards[i] - mean) * (rewards[i] - mean);
    const double scale = scale_by_std ? 1.0 / (std::sqrt(var / static_cast<double>(group_size)) + eps) : 1.0;
    for (int64_t i = g0; i < g0 + group_size; ++i) advantages[i] = static_cast<float>((rewards[i] - mean) * scale);
  }
  return advantages;
}

void set_row_advantages(LossBatch& batch, const std::vector<float>& row_advantage) {
  FW_CHECK(static_cast<int64_t>(row_advantage.size()) == batch.rows, "row_advantage has ", row_advantage.size(),
           " entries; expected one per row (", batch.rows, ")");
  FW_CHECK(static_cast<int64_t>(batch.mask.size()) == batch.tokens_count(), "LossBatch.mask has ",
           batch.mask.size(), " entries; expected rows*seq = ", batch.tokens_count());
  batch.advantage.assign(batch.mask.size(), 0.0f);
  for (int64_t r = 0; r < batch.rows; ++r)
    for (int64_t t = r * batch.seq; t < (r + 1) * batch.seq; ++t)
      if (batch.mask[t] != 0) batch.advantage[t] = row_advantage[r];
}

}  // namespace flywheel
