// DPO: direct preference optimisation (Rafailov et al. 2023, arXiv:2305.18290; docs/objectives.md).
//
// For a pair (chosen row c, rejected row r) of the same prompt, with sums over mask tokens:
//   s = beta [ (sum_c logp - sum_c ref) - (sum_r logp - sum_r ref) ]
//   L = (1/P) sum_pairs -log sigmoid(s)                           P = global number of pairs
//   dL/dlogp_t = -(beta/P) sigmoid(-s) on chosen mask tokens, +(beta/P) sigmoid(-s) on rejected ones
// -log sigmoid(s) = softplus(-s) is evaluated as max(-s, 0) + log1p(exp(-|s|)), finite for any s.
// ref_logprob comes from the frozen reference policy (the initial weights); the caller computes it.
//
// Placement: both rows of a pair must be on the same rank, and every token of a row (whole rows,
// needs_whole_rows() = true): then s is local and only the pair count and the metric sums are
// all-reduced. Under context parallelism the caller gathers a row's logps before evaluating.
#pragma once

#include "train/loss.h"

namespace flywheel {

class DpoLoss final : public Loss {
 public:
  explicit DpoLoss(const DpoConfig& config);
  std::string name() const override { return "dpo"; }
  bool needs_whole_rows() const override { return true; }
  // Needs ref_logprob, pair_id and chosen: every pair_id present on this rank exactly twice, once
  // chosen and once rejected. Metrics: reward_margin (mean s), accuracy (fraction with s > 0),
  // chosen_reward / rejected_reward (means of beta (sum logp - sum ref)), pairs.
  LossResult evaluate(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce,
                      std::vector<float>& dloss_dlogp) const override;

 private:
  DpoConfig config_;
};

// -log sigmoid(x), stable for any finite x.
double neg_log_sigmoid(double x);
// sigmoid(x), stable for any finite x.
double sigmoid(double x);

}  // namespace flywheel
