// Mixture-of-experts slot arithmetic: a token's k (token, expert) slots are combined with the
// router's weights, and the statistics of the load-balancing loss are counted. Slot s = t * k + j
// is token t's j-th choice. Per token the slots are taken in order j = 0 .. k-1, so a row's result
// does not depend on which other tokens share the call (the KV-cache decoder relies on it).
#pragma once

#include <cstdint>

namespace flywheel::ops {

// y[t, :] += sum_j weight[t * k + j] * slots[t * k + j, :] (weight null: the plain sum), for t < n.
template <typename T>
void combine_slots(const T* slots, const T* weight, T* y, int64_t n, int64_t k, int64_t d);

// Gradients of combine_slots given dy[n, d]: dslots[s, :] = weight[s] * dy[t, :] and
// dweight[s] = dy[t, :] . slots[s, :] (summed in order i = 0 .. d-1), s = t * k + j.
template <typename T>
void combine_slots_backward(const T* slots, const T* weight, const T* dy, T* dslots, T* dweight, int64_t n,
                            int64_t k, int64_t d);

// stats[0 .. E) = slots routed to each expert, stats[E .. 2E) = sum over tokens of probs[t, e],
// stats[2E] = n; every sum in token order, in double.
template <typename T>
void routing_statistics(const int32_t* expert_of_slot, const T* probs, int64_t n, int64_t experts, int64_t top_k,
                        double* stats);

}  // namespace flywheel::ops
