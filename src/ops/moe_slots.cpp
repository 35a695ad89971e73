#include "ops/moe_slots.h"

namespace flywheel::ops {

template <typename T>
void combine_slots(const T* slots, const T* weight, T* y, int64_t n, int64_t k, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const T* src = slots + (t * k + j) * d;
      T* dst = y + t * d;
      if (weight) {
        const T w = weight[t * k + j];
        for (int64_t i = 0; i < d; ++i) dst[i] += w * src[i];
      } else {
        for (int64_t i = 0; i < d; ++i) dst[i] += src[i];
      }
    }
}

template <typename T>
void combine_slots_backward(const T* slots, const T* weight, const T* dy, T* dslots, T* dweight, int64_t n,
                            int64_t k, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t s = 0; s < n * k; ++s) {
    const T* out = slots + s * d;
    const T* dyt = dy + (s / k) * d;
    T* dout = dslots + s * d;
    const T w = weight[s];
    T dot = 0;
    for (int64_t i = 0; i < d; ++i) {
      dot += dyt[i] * out[i];
      dout[i] = w * dyt[i];
    }
    dweight[s] = dot;
  }
}

template <typename T>
void routing_statistics(const int32_t* expert_of_slot, const T* probs, int64_t n, int64_t experts, int64_t top_k,
                        double* stats) {
  for (int64_t i = 0; i < 2 * experts + 1; ++i) stats[i] = 0.0;
  for (int64_t s = 0; s < n * top_k; ++s) stats[expert_of_slot[s]] += 1.0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t e = 0; e < experts; ++e) stats[experts + e] += probs[t * experts + e];
  stats[2 * experts] = static_cast<double>(n);
}

template void combine_slots<float>(const float*, const float*, float*, int64_t, int64_t, int64_t);
template void combine_slots<double>(const double*, const double*, double*, int64_t, int64_t, int64_t);
template void combine_slots_backward<float>(const float*, const float*, const float*, float*, float*, int64_t,
                                            int64_t, int64_t);
template void combine_slots_backward<double>(const double*, const double*, const double*, double*, double*, int64_t,
                                             int64_t, int64_t);
template void routing_statistics<float>(const int32_t*, const float*, int64_t, int64_t, int64_t, double*);
template void routing_statistics<double>(const int32_t*, const double*, int64_t, int64_t, int64_t, double*);

}  // namespace flywheel::ops
