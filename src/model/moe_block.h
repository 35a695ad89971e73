// Mixture-of-experts FFN (dropless): every token goes to its top-k experts, no capacity limit.
//   p = softmax(h Wr^T); w = top-k of p (renormalised if moe_normalize_topk);
//   y = sum_j w_j Expert_{e_j}(h) [+ SharedExpert(h)]
// Load balancing (Switch Transformer, Fedus et al. 2021, eq. 4), over the n tokens of the call:
//   f_e = (tokens routed to e) / (n k)  (constant),  P_e = mean_t p[t, e],  aux = E * sum_e f_e P_e
// aux is 1 for a perfectly balanced router. Slots (token, expert) are grouped per expert by
// ExpertDispatch -- across the expert-parallel group when an ExpertExchange is installed, each rank
// running only its own experts -- so every expert runs one GEMM per projection on its rows, and
// results are combined per token in slot order: deterministic for any thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/buffer.h"
#include "core/tensor.h"
#include "model/config.h"
#include "model/expert_dispatch.h"
#include "model/ffn_block.h"

namespace flywheel {

struct MoeWeights {
  Tensor router;                      // [E, d]
  std::vector<SwiGluWeights> experts;  // E entries
  SwiGluWeights shared{};             // valid when cfg.moe_shared_expert
};
struct MoeGrads {
  float* router;
  std::vector<SwiGluGrads> experts;
  SwiGluGrads shared{};
};

struct MoeActivations {
  Buffer<float> router_probs;           // [n, E]
  std::vector<int32_t> expert_of_slot;  // [n, k]
  Buffer<float> slot_weight;            // [n, k]
  ExpertDispatch dispatch;              // where each slot's row went
  Buffer<float> grouped_in;             // [grouped rows, d]: inputs of this rank's experts
  Buffer<float> slot_out;               // [n k, d]: expert output for each slot, back home
  std::vector<SwiGluActivations> expert_act;  // per local expert
  SwiGluActivations shared_act;
  std::vector<double> routed_fraction;  // f_e over the global micro-batch
  double stats_tokens = 0;              // N: tokens the statistics cover (all dp ranks)
  double aux = 0;                       // aux_layer (coefficient-free)
};

// y[n, d] = MoE(h) (overwrites y); fills act (and act.aux, the aux of the whole micro-batch).
// exchange null: every expert here and the micro-batch is this rank's. With an exchange, w.experts
// needs valid weights only for this rank's experts.
void moe_block_forward(Backend& backend, const ModelConfig& cfg, const MoeWeights& w, const float* h, float* y,
                       int64_t n, MoeActivations& act, ExpertExchange* exchange);

// dh[n, d] = d/dh of (dy . y) + aux_weight * d aux / dh. Weight grads accumulate.
void moe_block_backward(Backend& backend, const ModelConfig& cfg, const MoeWeights& w, const MoeGrads& g,
                        const float* h, const float* dy, float* dh, int64_t n, double aux_weight, MoeActivations& act);

}  // namespace flywheel
