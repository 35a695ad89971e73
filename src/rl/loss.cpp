// The loss registry, the shared batch checks, the reducers, and the SFT loss.
#include "rl/loss.h"

#include "comm/comm.h"
#include "core/error.h"
#include "rl/dpo.h"
#include "rl/grpo.h"

namespace flywheel {
namespace {

template <typename Vector>
void check_size(const Vector& v, int64_t expected, const char* field, const char* unit) {
  FW_CHECK(v.empty() || static_cast<int64_t>(v.size()) == expected, "RlBatch.", field, " has ", v.size(),
           " entries; expected 0 (absent) or ", expected, " (one per ", unit, ")");
}

}  // namespace

void RlBatch::check_shapes(int64_t logp_size) const {
  FW_CHECK(rows >= 0 && seq >= 0, "RlBatch has rows=", rows, ", seq=", seq, "; both must be >= 0");
  const int64_t n = tokens_count();
  FW_CHECK(static_cast<int64_t>(mask.size()) == n, "RlBatch.mask has ", mask.size(),
           " entries; expected rows*seq = ", n);
  FW_CHECK(logp_size == n, "logp has ", logp_size, " entries; expected rows*seq = ", n);
  check_size(tokens, n, "tokens", "token");
  check_size(targets, n, "targets", "token");
  check_size(advantage, n, "advantage", "token");
  check_size(old_logprob, n, "old_logprob", "token");
  check_size(infer_logprob, n, "infer_logprob", "token");
  check_size(ref_logprob, n, "ref_logprob", "token");
  check_size(pair_id, rows, "pair_id", "row");
  check_size(chosen, rows, "chosen", "row");
  for (int64_t t = 0; t < n; ++t) {
    FW_CHECK(mask[t] == 0.0f || mask[t] == 1.0f, "RlBatch.mask[", t, "] = ", mask[t], "; allowed: 0 or 1");
  }
}

Reducer local_reducer() {
  auto nothing = [](double*, int64_t) {};
  return Reducer{nothing, nothing};
}

Reducer comm_reducer(Comm& comm) {
  return Reducer{[&comm](double* data, int64_t count) { comm.all_reduce_sum(data, count); },
                 [&comm](double* data, int64_t count) { comm.all_reduce_max(data, count); }};
}

void check_reducer(const Reducer& reduce) {
  FW_CHECK(reduce.sum && reduce.max, "Reducer needs both sum and max set (use local_reducer() on one rank, ",
           "comm_reducer(comm) over the data-parallel ranks)");
}

// L = -(1/N) sum_t mask_t logp_t, dL/dlogp_t = -mask_t / N; N = 0 (nothing to learn) gives L = 0.
LossResult SftLoss::evaluate(const RlBatch& local, const std::vector<float>& logp, const Reducer& reduce,
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
