// GRPO loss: see grpo.h for the objective and its gradient.
#include "train/grpo.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace flywheel {
namespace {

void check_finite_at(const std::vector<float>& v, int64_t t, const char* field) {
  FW_CHECK(std::isfinite(v[t]), "LossBatch.", field, "[", t, "] = ", v[t], " at a mask token; must be finite");
}

// One token's contribution f_t = w pg - beta k3 and its derivative df_t/dlogp_t.
struct TokenTerm {
  double value = 0, grad = 0;
  double ratio = 1, weight = 1, k3 = 0;
  bool clipped = false;  // the min picked the clipped branch and it differs: no gradient through pg
};

}  // namespace

void GrpoConfig::validate() const {
  FW_CHECK(std::isfinite(clip_low) && clip_low >= 0 && clip_low < 1, "rl.clip_low=", clip_low,
           " must be in [0, 1) (the ratio's lower bound 1 - clip_low must stay positive)");
  FW_CHECK(std::isfinite(clip_high) && clip_high >= 0, "rl.clip_high=", clip_high, " must be finite and >= 0");
  FW_CHECK(std::isfinite(kl_beta) && kl_beta >= 0, "rl.kl_beta=", kl_beta, " must be finite and >= 0 (0: no KL)");
  // A cap below 1 would truncate on-policy tokens (w = 1) too, which no IS correction intends.
  FW_CHECK(tis_cap == 0 || (std::isfinite(tis_cap) && tis_cap >= 1), "rl.tis_cap=", tis_cap,
           " must be 0 (off) or a finite cap >= 1");
}

GrpoLoss::GrpoLoss(const GrpoConfig& config) : config_(config) { config_.validate(); }

LossResult GrpoLoss::evaluate(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce,
                              std::vector<float>& dloss_dlogp) const {
  local.check_shapes(static_cast<int64_t>(logp.size()));
  check_reducer(reduce);
  const bool tis = config_.tis_cap > 0, has_ref = !local.ref_logprob.empty();
  FW_CHECK(!local.advantage.empty(), "grpo needs LossBatch.advantage (per token)");
  FW_CHECK(!tis || !local.infer_logprob.empty(), "grpo with rl.tis_cap=", config_.tis_cap,
           " needs LossBatch.infer_logprob (the sampler's logprobs); set rl.tis_cap=0 to disable");
  FW_CHECK(config_.kl_beta == 0 || has_ref, "grpo with rl.kl_beta=", config_.kl_beta,
           " needs LossBatch.ref_logprob (the frozen reference policy); set rl.kl_beta=0 to disable");
  const double lo = 1 - config_.clip_low, hi = 1 + config_.clip_high, beta = config_.kl_beta;

  auto term = [&](int64_t t) {
    TokenTerm r;
    const double lp = logp[t], adv = local.advantage[t];
    const double old = local.old_logprob.empty() ? lp : local.old_logprob[t];
    r.ratio = std::exp(lp - old);
    const double unclipped = r.ratio * adv, clipped = std::clamp(r.ratio, lo, hi) * adv;
    r.clipped = clipped < unclipped;
    const double pg = std::min(unclipped, clipped), dpg = r.clipped ? 0.0 : r.ratio * adv;
    if (tis) r.weight = std::min(std::exp(old - static_cast<double>(local.infer_logprob[t])), config_.tis_cap);
    r.value = r.weight * pg;
    r.grad = r.weight * dpg;
    if (has_ref) {
      const double d = local.ref_logprob[t] - lp;
      r.k3 = std::exp(d) - d - 1;
      r.value -= beta * r.k3;
      r.grad -= beta * (1 - std::exp(d));
    }
    return r;
  };

  // sums: N, sum f, clipped tokens, sum w, sum k3; max: ratio.
  double sums[5] = {0, 0, 0, 0, 0};
  double ratio_max = -HUGE_VAL;
  dloss_dlogp.assign(logp.size(), 0.0f);
  std::vector<double> grad(logp.size(), 0.0);
  for (int64_t t = 0; t < static_cast<int64_t>(logp.size()); ++t) {
    if (local.mask[t] == 0) continue;
    check_finite_at(logp, t, "logp");
    check_finite_at(local.advantage, t, "advantage");
    if (!local.old_logprob.empty()) check_finite_at(local.old_logprob, t, "old_logprob");
    if (tis) check_finite_at(local.infer_logprob, t, "infer_logprob");
    if (has_ref) check_finite_at(local.ref_logprob, t, "ref_logprob");
    const TokenTerm r = term(t);
    sums[0] += 1;
    sums[1] += r.value;
    sums[2] += r.clipped ? 1 : 0;
    sums[3] += r.weight;
    sums[4] += r.k3;
    ratio_max = std::max(ratio_max, r.ratio);
    grad[t] = r.grad;
  }
  reduce.sum(sums, 5);
  reduce.max(&ratio_max, 1);

  // N = 0 (no completion token anywhere) has nothing to learn: L = 0 and no gradient.
  const double inv_n = sums[0] > 0 ? 1.0 / sums[0] : 0.0;
  for (size_t t = 0; t < grad.size(); ++t) dloss_dlogp[t] = static_cast<float>(-grad[t] * inv_n);
  LossResult result;
  result.loss = -sums[1] * inv_n;
  result.metrics["loss_tokens"] = sums[0];
  result.metrics["clip_fraction"] = sums[2] * inv_n;
  result.metrics["tis_weight_mean"] = sums[0] > 0 ? sums[3] * inv_n : 1.0;
  result.metrics["ratio_max"] = sums[0] > 0 ? ratio_max : 1.0;
  if (has_ref) result.metrics["kl"] = sums[4] * inv_n;
  return result;
}

}  // namespace flywheel
