// Mixture-of-experts router: softmax over experts, top-k selection, optional renormalisation.
//   p = softmax(logits) over E experts; S = the k experts with the largest p (ties: lower index);
//   w_j = p_j / sum_{i in S} p_i  (normalize) or w_j = p_j.
// The selection is piecewise constant, so gradients flow only through p.
#pragma once

#include <cstdint>

namespace flywheel::ops {

// probs[n, E], expert[n, k] (int32, sorted by descending p), weight[n, k].
template <typename T>
void router_forward(const T* logits, T* probs, int32_t* expert, T* weight, int64_t n, int64_t experts,
                    int64_t top_k, bool normalize);

// dlogits[n, E] (overwritten) from d loss / d weight[n, k] plus an extra gradient on the
// probabilities dprobs_extra[n, E] (the load-balancing loss; may be null).
template <typename T>
void router_backward(const T* probs, const int32_t* expert, const T* weight, const T* dweight,
                     const T* dprobs_extra, T* dlogits, int64_t n, int64_t experts, int64_t top_k,
                     bool normalize);

}  // namespace flywheel::ops
