// DPO loss: see dpo.h for the objective and its gradient.
#include "train/dpo.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"

namespace flywheel {
namespace {

struct PairRows {
  int64_t chosen = -1, rejected = -1;
};

// pair_id -> its two rows on this rank, checking each pair has exactly one chosen and one rejected.
std::map<int64_t, PairRows> collect_pairs(const LossBatch& batch) {
  std::map<int64_t, PairRows> pairs;
  for (int64_t row = 0; row < batch.rows; ++row) {
    const int8_t side = batch.chosen[row];
    FW_CHECK(side == 0 || side == 1, "LossBatch.chosen[", row, "] = ", int(side), "; allowed: 0 or 1");
    PairRows& pair = pairs[batch.pair_id[row]];
    int64_t& slot = side ? pair.chosen : pair.rejected;
    FW_CHECK(slot < 0, "dpo pair ", batch.pair_id[row], " has two ", side ? "chosen" : "rejected", " rows (",
             slot, " and ", row, "); each pair needs one chosen and one rejected row");
    slot = row;
  }
  for (const auto& [id, pair] : pairs) {
    FW_CHECK(pair.chosen >= 0 && pair.rejected >= 0, "dpo pair ", id, " has only its ",
             pair.chosen >= 0 ? "chosen" : "rejected", " row on this rank; both rows of a pair must be on",
             " the same rank");
  }
  return pairs;
}

// beta * sum over the row's mask tokens of (logp - ref): the row's implicit reward.
double row_reward(const LossBatch& batch, const std::vector<float>& logp, int64_t row, double beta) {
  double sum = 0;
  for (int64_t t = row * batch.seq; t < (row + 1) * batch.seq; ++t) {
    if (batch.mask[t] == 0) continue;
    FW_CHECK(std::isfinite(logp[t]) && std::isfinite(batch.ref_logprob[t]), "dpo: logp[", t, "] = ", logp[t],
             " or ref_logprob[", t, "] = ", batch.ref_logprob[t], " is not finite at a mask token");
    sum += static_cast<double>(logp[t]) - batch.ref_logprob[t];
  }
  return beta * sum;
}

void fill_row(const LossBatch& batch, int64_t row, double value, std::vector<float>& out) {
  for (int64_t t = row * batch.seq; t < (row + 1) * batch.seq; ++t)
    out[t] = batch.mask[t] != 0 ? static_cast<float>(value) : 0.0f;
}

}  // namespace

double neg_log_sigmoid(double x) { return std::max(-x, 0.0) + std::log1p(std::exp(-std::abs(x))); }

double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

void DpoConfig::validate() const {
  FW_CHECK(std::isfinite(beta) && beta > 0, "rl.dpo_beta=", beta, " must be finite and > 0");
}

DpoLoss::DpoLoss(const DpoConfig& config) : config_(config) { config_.validate(); }

LossResult DpoLoss::evaluate(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce,
                             std::vector<float>& dloss_dlogp) const {
  local.check_shapes(static_cast<int64_t>(logp.size()));
  check_reducer(reduce);
  FW_CHECK(!local.ref_logprob.empty(), "dpo needs LossBatch.ref_logprob (logprobs of the frozen initial policy)");
  FW_CHECK(static_cast<int64_t>(local.pair_id.size()) == local.rows &&
               static_cast<int64_t>(local.chosen.size()) == local.rows,
           "dpo needs LossBatch.pair_id and LossBatch.chosen for each of the ", local.rows, " rows");
  const double beta = config_.beta;
  const std::map<int64_t, PairRows> pairs = collect_pairs(local);

  // First pass: s per pair and the global sums {P, sum loss, sum s, correct, sum r_c, sum r_r}.
  std::vector<double> margins;
  double sums[6] = {0, 0, 0, 0, 0, 0};
  for (const auto& [id, pair] : pairs) {
    const double chosen = row_reward(local, logp, pair.chosen, beta);
    const double rejected = row_reward(local, logp, pair.rejected, beta);
    const double s = chosen - rejected;
    margins.push_back(s);
    sums[0] += 1;
    sums[1] += neg_log_sigmoid(s);
    sums[2] += s;
    sums[3] += s > 0 ? 1 : 0;
    sums[4] += chosen;
    sums[5] += rejected;
  }
  reduce.sum(sums, 6);

  // d/ds softplus(-s) = -sigmoid(-s); ds/dlogp = +beta on chosen tokens, -beta on rejected ones.
  const double inv_p = sums[0] > 0 ? 1.0 / sums[0] : 0.0;
  dloss_dlogp.assign(logp.size(), 0.0f);
  size_t k = 0;
  for (const auto& [id, pair] : pairs) {
    const double g = beta * sigmoid(-margins[k++]) * inv_p;
    fill_row(local, pair.chosen, -g, dloss_dlogp);
    fill_row(local, pair.rejected, g, dloss_dlogp);
  }
  LossResult result;
  result.loss = sums[1] * inv_p;
  result.metrics["pairs"] = sums[0];
  result.metrics["reward_margin"] = sums[2] * inv_p;
  result.metrics["accuracy"] = sums[3] * inv_p;
  result.metrics["chosen_reward"] = sums[4] * inv_p;
  result.metrics["rejected_reward"] = sums[5] * inv_p;
  return result;
}

}  // namespace flywheel
