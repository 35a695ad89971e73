#include "model/moe_block.h"

#include <cstring>

#include "ops/gemm.h"
#include "ops/moe_router.h"

namespace flywheel {
namespace {

// Groups the (token, slot) pairs by expert, in token order within each expert.
void group_by_expert(int64_t n, int64_t k, int64_t experts, MoeActivations& act) {
  act.expert_offset.assign(experts + 1, 0);
  for (int64_t s = 0; s < n * k; ++s) ++act.expert_offset[act.expert_of_slot[s] + 1];
  for (int64_t e = 0; e < experts; ++e) act.expert_offset[e + 1] += act.expert_offset[e];
  std::vector<int64_t> cursor(act.expert_offset.begin(), act.expert_offset.end() - 1);
  act.row_of_slot.resize(n * k);
  act.token_of_row.resize(n * k);
  for (int64_t s = 0; s < n * k; ++s) {
    const int64_t row = cursor[act.expert_of_slot[s]]++;
    act.row_of_slot[s] = row;
    act.token_of_row[row] = s / k;
  }
}

// rows[i, :] = h[token_of_row[first + i], :]
Buffer<float> gather_rows(const float* h, const std::vector<int64_t>& token_of_row, int64_t first, int64_t count,
                          int64_t d) {
  Buffer<float> rows(count * d);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < count; ++i)
    std::memcpy(rows.data() + i * d, h + token_of_row[first + i] * d, sizeof(float) * d);
  return rows;
}

}  // namespace

void moe_block_forward(const ModelConfig& cfg, const MoeWeights& w, const float* h, float* y, int64_t n,
                       MoeActivations& act, Comm* stats_group) {
  const int64_t d = cfg.d_model, E = cfg.moe_experts, k = cfg.moe_top_k, hidden = cfg.resolved_moe_d_ff();
  Buffer<float> logits(n * E);
  act.router_probs.resize(n * E);
  act.expert_of_slot.resize(n * k);
  act.slot_weight.resize(n * k);
  ops::linear_forward(h, w.router, logits.data(), n, d, E);
  ops::router_forward(logits.data(), act.router_probs.data(), act.expert_of_slot.data(), act.slot_weight.data(),
                      n, E, k, cfg.moe_normalize_topk);
  group_by_expert(n, k, E, act);

  act.expert_out.resize(n * k * d);
  act.expert_act.resize(E);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = act.expert_offset[e], count = act.expert_offset[e + 1] - first;
    if (count == 0) continue;
    Buffer<float> rows = gather_rows(h, act.token_of_row, first, count, d);
    swiglu_ffn_forward(w.experts[e], rows.data(), act.expert_out.data() + first * d, count, d, hidden,
                       act.expert_act[e]);
  }

  if (cfg.moe_shared_expert) {
    swiglu_ffn_forward(w.shared, h, y, n, d, hidden, act.shared_act);
  } else {
    std::fill(y, y + n * d, 0.0f);
  }
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const float weight = act.slot_weight[t * k + j];
      const float* src = act.expert_out.data() + act.row_of_slot[t * k + j] * d;
      float* dst = y + t * d;
      for (int64_t i = 0; i < d; ++i) dst[i] += weight * src[i];
    }

  // Load-balancing statistics: per expert the routed count and the probability sum (in token
  // order: deterministic), then summed over the micro-batch's ranks.
  std::vector<double> stats(2 * E + 1, 0.0);  // counts[E], prob_sums[E], tokens
  for (int64_t e = 0; e < E; ++e) stats[e] = static_cast<double>(act.expert_offset[e + 1] - act.expert_offset[e]);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t e = 0; e < E; ++e) stats[E + e] += act.router_probs[t * E + e];
  stats[2 * E] = static_cast<double>(n);
  if (stats_group && stats_group->size() > 1) stats_group->all_reduce_sum(stats.data(), 2 * E + 1);
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

void moe_block_backward(const ModelConfig& cfg, const MoeWeights& w, const MoeGrads& g, const float* h,
                        const float* dy, float* dh, int64_t n, double aux_weight, MoeActivations& act) {
  const int64_t d = cfg.d_model, E = cfg.moe_experts, k = cfg.moe_top_k, hidden = cfg.resolved_moe_d_ff();
  // Per slot: d weight = dy_t . expert_out_row; the expert row's gradient is weight * dy_t.
  Buffer<float> dslot_weight(n * k);
  Buffer<float> dexpert_out(n * k * d);
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < n * k; ++s) {
    const int64_t t = s / k, row = act.row_of_slot[s];
    const float* out = act.expert_out.data() + row * d;
    const float* dyt = dy + t * d;
    float* drow = dexpert_out.data() + row * d;
    const float weight = act.slot_weight[s];
    float dot = 0;
    for (int64_t i = 0; i < d; ++i) {
      dot += dyt[i] * out[i];
      drow[i] = weight * dyt[i];
    }
    dslot_weight[s] = dot;
  }

  // Each expert's input gradient lands in its grouped rows; then rows are summed per token.
  Buffer<float> drows(n * k * d);
  for (int64_t e = 0; e < E; ++e) {
    const int64_t first = act.expert_offset[e], count = act.expert_offset[e + 1] - first;
    if (count == 0) continue;
    Buffer<float> rows = gather_rows(h, act.token_of_row, first, count, d);
    swiglu_ffn_backward(w.experts[e], g.experts[e], rows.data(), dexpert_out.data() + first * d,
                        drows.data() + first * d, count, d, hidden, act.expert_act[e], false);
  }

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
      const float* src = drows.data() + act.row_of_slot[t * k + j] * d;
      float* dst = dh + t * d;
      for (int64_t i = 0; i < d; ++i) dst[i] += src[i];
    }
}

}  // namespace flywheel
