// The loss registry, the reducers, and the SFT loss.
#include "train/loss.h"

#include "comm/comm.h"
#include "core/error.h"
#include "train/dpo.h"
#include "train/grpo.h"

namespace flywheel {

Reducer local_reducer() {
  auto nothing = [](double*, int64_t) {};
  return Reducer{nothing, nothing};
}

Reducer comm_reducer(Comm& comm) {
  return Reducer{[&comm](double* data, int64_t count) { comm.control().all_reduce_sum(data, count); },
                 [&comm](double* data, int64_t count) { comm.control().all_reduce_max(data, count); }};
}

void check_reducer(const Reducer& reduce) {
  FW_CHECK(reduce.sum && reduce.max, "Reducer needs both sum and max set (use local_reducer() on one rank, ",
           "comm_reducer(comm) over the data-parallel ranks)");
}

// L = -(1/N) sum_t mask_t logp_t, dL/dlogp_t = -mask_t / N; N = 0 (nothing to learn) gives L = 0.
LossResult SftLoss::evaluate(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce,
                             std::vector<float>& dloss_dlogp) const {
  local.check_shapes(static_cast<int64_t>(logp.size()));
  check_reducer(reduce);
  double sums[2] = {0, 0};  // {N, sum mask logp}
  for (size_t t = 0; t < logp.size(); ++t) {
    sums[0] += local.mask[t];
    sums[1] += local.mask[t] * static_cast<double>(logp[t]);
  }
  reduce.sum(sums, 2);
  const double inv_n = sums[0] > 0 ? 1.0 / sums[0] : 0.0;
  dloss_dlogp.assign(logp.size(), 0.0f);
  for (size_t t = 0; t < logp.size(); ++t) dloss_dlogp[t] = static_cast<float>(-local.mask[t] * inv_n);
  LossResult result;
  result.loss = -sums[1] * inv_n;
  result.metrics["loss_tokens"] = sums[0];
  return result;
}

const std::vector<std::string>& loss_names() {
  static const std::vector<std::string> names = {"sft", "grpo", "dpo"};
  return names;
}

std::unique_ptr<Loss> make_loss(const std::string& name, const LossConfig& config) {
  if (name == "sft") return std::make_unique<SftLoss>();
  if (name == "grpo") return std::make_unique<GrpoLoss>(config.grpo);
  if (name == "dpo") return std::make_unique<DpoLoss>(config.dpo);
  std::string allowed;
  for (const std::string& known : loss_names()) allowed += (allowed.empty() ? "" : ", ") + known;
  FW_THROW("loss '", name, "' is not known; allowed: ", allowed);
}

}  // namespace flywheel
