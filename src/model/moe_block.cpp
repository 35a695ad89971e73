#include "model/moe_block.h"

namespace flywheel {
namespace {

// Routing statistics: per expert the routed count and the probability sum (in token order:
// deterministic), summed over the micro-batch's ranks; then f_e, N and aux.
void load_balance_stats(Backend& backend, int64_t n, int64_t E, int64_t k, ExpertExchange* exchange,
                        MoeActivations& act) {
  std::vector<double> stats(2 * E + 1, 0.0);  // counts[E], prob_sums[E], tokens
  backend.routing_statistics(act.expert_of_slot.data(), act.router_probs.data(), n, E, k, stats.data());
  if (exchange) exchange->sum_statistics(stats.data(), 2 * E + 1);
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

void moe_block_forward(Backend& backend, const ModelConfig& cfg, const MoeWeights& w, const float* h, float* y,
                       int64_t n, MoeActivations& act, ExpertExchange* exchange) {
  const int64_t d = cfg.d_model, E = cfg.moe_experts, k = cfg.moe_top_k, hidden = cfg.resolved_moe_d_ff();
  const LinearKernel kernel = cfg.forward_kernel();
  Buffer<float> logits(n * E);
  act.router_probs.resize(n * E);
  act.expert_of_slot.resize(n * k);
  act.slot_weight.resize(n * k);
  backend.linear(kernel, h, w.router, logits.data(), n, d, E);
  backend.router(logits.data(), act.router_probs.data(), act.expert_of_slot.data(), act.slot_weight.data(), n, E, k,
                 cfg.moe_normalize_topk);

  // Each slot's input row travels to its expert's rank; every local expert runs on its rows.
  act.dispatch = ExpertDispatch(exchange, E, act.expert_of_slot.data(), n * k);
  const ExpertDispatch& plan = act.dispatch;
  std::vector<int64_t> token_of_slot(static_cast<size_t>(n * k));
  for (int64_t s = 0; s < n * k; ++s) token_of_slot[s] = s / k;
  Buffer<float> slot_in(n * k * d);
  backend.gather_rows(h, token_of_slot.data(), slot_in.data(), n * k, d);
  act.grouped_in.resize(plan.grouped_rows() * d);
  plan.dispatch(backend, slot_in.data(), act.grouped_in.data(), d);
  Buffer<float> grouped_out(plan.grouped_rows() * d);
  act.expert_act.resize(plan.local_experts());
  for (int64_t le = 0; le < plan.local_experts(); ++le) {
    const int64_t first = plan.expert_offset()[le], count = plan.expert_offset()[le + 1] - first;
    if (count == 0) continue;
    swiglu_ffn_forward(backend, kernel, w.experts[plan.first_expert() + le], act.grouped_in.data() + first * d,
                       grouped_out.data() + first * d, count, d, hidden, act.expert_act[le]);
  }
  act.slot_out.resize(n * k * d);
  plan.combine(backend, grouped_out.data(), act.slot_out.data(), d);

  if (cfg.moe_shared_expert)
    swiglu_ffn_forward(backend, kernel, w.shared, h, y, n, d, hidden, act.shared_act);
  else
    backend.fill(y, n * d, 0.0f);
  backend.combine_slots(act.slot_out.data(), act.slot_weight.data(), y, n, k, d);
  load_balance_stats(backend, n, E, k, exchange, act);
}

void moe_block_backward(Backend& backend, const ModelConfig& cfg, const MoeWeights& w, const MoeGrads& g,
                        const float* h, const float* dy, float* dh, int64_t n, double aux_weight, MoeActivations& act) {
  const int64_t d = cfg.d_model, E = cfg.moe_experts, k = cfg.moe_top_k, hidden = cfg.resolved_moe_d_ff();
  const ExpertDispatch& plan = act.dispatch;
  // Per slot: d weight = dy_t . slot_out; the slot output's gradient is weight * dy_t.
  Buffer<float> dslot_weight(n * k), dslot_out(n * k * d);
  backend.combine_slots_backward(act.slot_out.data(), act.slot_weight.data(), dy, dslot_out.data(),
                                 dslot_weight.data(), n, k, d);

  // Output gradients travel to the experts, input gradients travel back.
  Buffer<float> dgrouped_out(plan.grouped_rows() * d), dgrouped_in(plan.grouped_rows() * d);
  plan.dispatch(backend, dslot_out.data(), dgrouped_out.data(), d);
  for (int64_t le = 0; le < plan.local_experts(); ++le) {
    const int64_t first = plan.expert_offset()[le], count = plan.expert_offset()[le + 1] - first;
    if (count == 0) continue;
    const int64_t e = plan.first_expert() + le;
    swiglu_ffn_backward(backend, cfg.forward_kernel(), w.experts[e], g.experts[e], act.grouped_in.data() + first * d,
                        dgrouped_out.data() + first * d, dgrouped_in.data() + first * d, count, d, hidden,
                        act.expert_act[le], false);
  }
  Buffer<float> dslot_in(n * k * d);
  plan.combine(backend, dgrouped_in.data(), dslot_in.data(), d);

  // Router: aux = E * sum_e f_e * mean_t p[t,e]  =>  d aux / d p[t,e] = E f_e / N (N: all ranks' tokens).
  std::vector<float> daux_row(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e)
    daux_row[e] = static_cast<float>(aux_weight * E * act.routed_fraction[e] / act.stats_tokens);
  Buffer<float> dprobs_aux(n * E);
  backend.broadcast_row(daux_row.data(), dprobs_aux.data(), n, E);
  Buffer<float> dlogits(n * E);
  backend.router_backward(act.router_probs.data(), act.expert_of_slot.data(), act.slot_weight.data(),
                          dslot_weight.data(), dprobs_aux.data(), dlogits.data(), n, E, k, cfg.moe_normalize_topk);

  const float* router = w.router.data<float>();
  if (cfg.moe_shared_expert) {
    swiglu_ffn_backward(backend, cfg.forward_kernel(), w.shared, g.shared, h, dy, dh, n, d, hidden, act.shared_act,
                        false);
    backend.linear_backward(h, router, dlogits.data(), dh, g.router, n, d, E, true);
  } else {
    backend.linear_backward(h, router, dlogits.data(), dh, g.router, n, d, E, false);
  }
  backend.combine_slots(dslot_in.data(), nullptr, dh, n, k, d);
}

}  // namespace flywheel
