// GRPO: group-relative policy optimisation with a clipped surrogate (docs/objectives.md).
//
// Shao et al. 2024, "DeepSeekMath" (arXiv:2402.03300): the PPO clipped objective with advantages
// normalised within the G samples of a prompt (advantages.h) instead of a value function.
// Yu et al. 2025, "DAPO" (arXiv:2503.14476): decoupled bounds [1 - eps_low, 1 + eps_high] and the
// token mean over the whole batch (long completions are not down-weighted per token).
// Per completion token t (mask_t = 1), with old_t the trainer's logp at the start of the step:
//   ratio_t = exp(logp_t - old_t)
//   pg_t    = min(ratio_t A_t, clip(ratio_t, 1 - eps_low, 1 + eps_high) A_t)
//   w_t     = min(exp(old_t - infer_t), C)    truncated IS against the sampler's logprobs, a constant
//             (Yao et al. 2025, "Your efficient RL framework secretly brings you off-policy RL
//             training"; truncation as in Espeholt et al. 2018, IMPALA); w_t = 1 when C = 0
//   k3_t    = exp(ref_t - logp_t) - (ref_t - logp_t) - 1 >= 0    (Schulman 2020, "Approximating KL
//             divergence"): unbiased estimate of KL(pi || ref) under samples of pi
//   L = -(1/N) sum_t mask_t [w_t pg_t - beta k3_t],   N = global count of mask tokens.
// Gradient: d pg_t / d logp_t = ratio_t A_t when the unclipped term is the min (the clipped one is
// then equal or larger), else 0 (clip is flat outside the bounds); d k3_t / d logp_t = 1 - exp(ref_t - logp_t).
#pragma once

#include "train/loss.h"

namespace flywheel {

class GrpoLoss final : public Loss {
 public:
  explicit GrpoLoss(const GrpoConfig& config);
  std::string name() const override { return "grpo"; }
  bool needs_whole_rows() const override { return false; }
  // Needs advantage; infer_logprob when tis_cap > 0; ref_logprob when kl_beta > 0. Metrics (over
  // the global mask tokens): clip_fraction (tokens whose gradient the clip removed), ratio_max,
  // tis_weight_mean (1 when off), kl (mean k3; only when ref_logprob is given), loss_tokens.
  LossResult evaluate(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce,
                      std::vector<float>& dloss_dlogp) const override;

 private:
  GrpoConfig config_;
};

}  // namespace flywheel
