#include "model/moe_block.h"

#include <cstring>

#include "ops/gemm.h"
#include "ops/linear_invariant.h"
#include "ops/moe_router.h"

namespace flywheel {
namespace {

// Routing statistics: per expert the routed count and the probability sum (in token order:
// deterministic), summed over the micro-batch's ranks; then f_e, N and aux.
void load_balance_stats(int64_t n, int64_t E, int64_t k, Comm* group, MoeActivations& act) {
  std::vector<double> stats(2 * E + 1, 0.0);  // counts[E], prob_sums[E], tokens
  for (int64_t s = 0; s < n * k; ++s) stats[act.expert_of_slot[s]] += 1.0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t e = 0; e < E; ++e) stats[E + e] += act.router_probs[t * E + e];
  stats[2 * E] = static_cast<double>(n);
  if (group && group->size() > 1) group->all_reduce_sum(stats.data(), 2 * E + 1);
  const double tokens = stats[2 * E];
  act.stats_tokens = tokens;
  act.routed_fraction.assign(E, 0.0);
  act.aux = 0;
  for (int64_t e = 0; e < E; ++e) {
    act.routed_fraction[e] = stats[e] / (tokens * static_cast<double>(k));
    act.aux += act.routed_fraction[e] * stats[E + e] / tokens;
  }
  act.aux *= static_cast<double>(E);
}

}  // namespace

void moe_block_forward(const ModelConfig& cfg, const MoeWeights& w, const float* h, float* y, int64_t n,
                       MoeActivations& act, const MoeGroups& groups) {
  const int64_t d = cfg.d_model, E = cfg.moe_experts, k = cfg.moe_top_k, hidden = cfg.resolved_moe_d_ff();
  Buffer<float> logits(n * E);
  act.router_probs.resize(n * E);
  act.expert_of_slot.resize(n * k);
  act.slot_weight.resize(n * k);
  const bool invariant = cfg.invariant_forward();
  ops::linear_forward_select(invariant, h, w.router, logits.data(), n, d, E);
  ops::router_forward(logits.data(), act.router_probs.data(), act.expert_of_slot.data(), act.slot_weight.data(),
                      n, E, k, cfg.moe_normalize_topk);

  // Each slot's input row travels to its expert's rank; every local expert runs on its rows.
  act.dispatch = ExpertDispatch(groups.experts, E, act.expert_of_slot.data(), n * k);
  const ExpertDispatch& plan = act.dispatch;
  Buffer<float> slot_in(n * k * d);
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < n * k; ++s) std::memcpy(slot_in.data() + s * d, h + (s / k) * d, sizeof(float) * d);
  act.grouped_in.resize(plan.grouped_rows() * d);
  plan.dispatch(slot_in.data(), act.grouped_in.data(), d);
  Buffer<float> grouped_out(plan.grouped_rows() * d);
  act.expert_act.resize(plan.local_experts());
  for (int64_t le = 0; le < plan.local_experts(); ++le) {
    const int64_t first = plan.expert_offset()[le], count = plan.expert_offset()[le + 1] - first;
    if (count == 0) continue;
    swiglu_ffn_forward(w.experts[plan.first_expert() + le], act.grouped_in.data() + first * d,
                       grouped_out.data() + first * d, count, d, hidden, act.expert_act[le], invariant);
  }
  act.slot_out.resize(n * k * d);
  plan.combine(grouped_out.data(), act.slot_out.data(), d);

  if (cfg.moe_shared_expert) {
    swiglu_ffn_forward(w.shared, h, y, n, d, hidden, act.shared_act, invariant);
  } else {
    std::fill(y, y + n * d, 0.0f);
  }
  // Per token, slots in order (one multiply-add per element and slot): a row's result does not
  // depend on which other tokens share the call (the KV-cache decoder relies on it).
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const float weight = act.slot_weight[t * k + j];
      const float* src = act.slot_out.data() + (t * k + j) * d;
      float* dst = y + t * d;
      for (int64_t i = 0; i < d; ++i) dst[i] += weight * src[i];
    }
  load_balance_stats(n, E, k, groups.stats, act);
}

void moe_block_backward(const ModelConfig& cfg, const MoeWeights& w, const MoeGrads& g, const float* h,
                        const float* dy, float* dh, int64_t n, double aux_weight, MoeActivations& act) {
  const int64_t d = cfg.d_model, E = cfg.moe_experts, k = cfg.moe_top_k, hidden = cfg.resolved_moe_d_ff();
  const ExpertDispatch& plan = act.dispatch;
  // Per slot: d weight = dy_t . slot_out; the slot output's gradient is weight * dy_t.
  Buffer<float> dslot_weight(n * k), dslot_out(n * k * d);
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < n * k; ++s) {
    const float* out = act.slot_out.data() + s * d;
    const float* dyt = dy + (s / k) * d;
    float* dout = dslot_out.data() + s * d;
    const float weight = act.slot_weight[s];
    float dot = 0;
    for (int64_t i = 0; i < d; ++i) {
      dot += dyt[i] * out[i];
      dout[i] = weight * dyt[i];
    }
    dslot_weight[s] = dot;
  }

  // Output gradients travel to the experts, input gradients travel back.
  Buffer<float> dgrouped_out(plan.grouped_rows() * d), dgrouped_in(plan.grouped_rows() * d);
  plan.dispatch(dslot_out.data(), dgrouped_out.data(), d);
  for (int64_t le = 0; le < plan.local_experts(); ++le) {
    const int64_t first = plan.expert_offset()[le], count = plan.expert_offset()[le + 1] - first;
    if (count == 0) continue;
    const int64_t e = plan.first_expert() + le;
    swiglu_ffn_backward(w.experts[e], g.experts[e], act.grouped_in.data() + first * d,
                        dgrouped_out.data() + first * d, dgrouped_in.data() + first * d, count, d, hidden,
                        act.expert_act[le], false);
  }
  Buffer<float> dslot_in(n * k * d);
  plan.combine(dgrouped_in.data(), dslot_in.data(), d);

  // Router: aux = E * sum_e f_e * mean_t p[t,e]  =>  d aux / d p[t,e] = E f_e / N (N: all ranks' tokens).
  Buffer<float> dprobs_aux(n * E);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t e = 0; e < E; ++e)
      dprobs_aux[t * E + e] = static_cast<float>(aux_weight * E * act.routed_fraction[e] / act.stats_tokens);
  Buffer<float> dlogits(n * E);
  ops::router_backward(act.router_probs.data(), act.expert_of_slot.data(), act.slot_weight.data(),
                       dslot_weight.data(), dprobs_aux.data(), dlogits.data(), n, E, k, cfg.moe_normalize_topk);

  if (cfg.moe_shared_expert) {
    swiglu_ffn_backward(w.shared, g.shared, h, dy, dh, n, d, hidden, act.shared_act, false);
    ops::linear_backward(h, w.router, dlogits.data(), dh, g.router, n, d, E, true);
  } else {
    ops::linear_backward(h, w.router, dlogits.data(), dh, g.router, n, d, E, false);
  }
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const float* src = dslot_in.data() + (t * k + j) * d;
      float* dst = dh + t * d;
      for (int64_t i = 0; i < d; ++i) dst[i] += src[i];
    }
}

}  // namespace flywheel
