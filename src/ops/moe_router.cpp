#include "ops/moe_router.h"

#include <cmath>
#include <vector>

namespace flywheel::ops {

template <typename T>
void router_forward(const T* logits, T* probs, int32_t* expert, T* weight, int64_t n, int64_t E, int64_t k,
                    bool normalize) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) {
    const T* lg = logits + r * E;
    T* p = probs + r * E;
    T max_logit = lg[0];
    for (int64_t e = 1; e < E; ++e) max_logit = lg[e] > max_logit ? lg[e] : max_logit;
    T sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (p[e] = std::exp(lg[e] - max_logit));
    for (int64_t e = 0; e < E; ++e) p[e] /= sum;
    // Top-k by selection: k is small (<= 8 in practice), E modest; strict '>' keeps the lower index on ties.
    int32_t* sel = expert + r * k;
    T* w = weight + r * k;
    T selected_sum = 0;
    for (int64_t j = 0; j < k; ++j) {
      int32_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        bool taken = false;
        for (int64_t i = 0; i < j; ++i) taken |= (sel[i] == e);
        if (!taken && (best < 0 || p[e] > p[best])) best = static_cast<int32_t>(e);
      }
      sel[j] = best;
      w[j] = p[best];
      selected_sum += p[best];
    }
    if (normalize)
      for (int64_t j = 0; j < k; ++j) w[j] /= selected_sum;
  }
}

template <typename T>
void router_backward(const T* probs, const int32_t* expert, const T* weight, const T* dweight,
                     const T* dprobs_extra, T* dlogits, int64_t n, int64_t E, int64_t k, bool normalize) {
#pragma omp parallel
  {
    std::vector<T> dp(static_cast<size_t>(E));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      const T* p = probs + r * E;
      const int32_t* sel = expert + r * k;
      const T* w = weight + r * k;
      const T* dw = dweight + r * k;
      for (int64_t e = 0; e < E; ++e) dp[e] = dprobs_extra ? dprobs_extra[r * E + e] : T(0);
      if (normalize) {
        // w_j = p_j / S  =>  dL/dp_j = (dw_j - sum_i dw_i w_i) / S  for selected j.
        T selected_sum = 0, dw_dot_w = 0;
        for (int64_t j = 0; j < k; ++j) {
          selected_sum += p[sel[j]];
          dw_dot_w += dw[j] * w[j];
        }
        for (int64_t j = 0; j < k; ++j) dp[sel[j]] += (dw[j] - dw_dot_w) / selected_sum;
      } else {
        for (int64_t j = 0; j < k; ++j) dp[sel[j]] += dw[j];
      }
      // Softmax backward: dlogit_e = p_e (dp_e - sum_i dp_i p_i).
      T dot = 0;
      for (int64_t e = 0; e < E; ++e) dot += dp[e] * p[e];
      for (int64_t e = 0; e < E; ++e) dlogits[r * E + e] = p[e] * (dp[e] - dot);
    }
  }
}

template void router_forward<float>(const float*, float*, int32_t*, float*, int64_t, int64_t, int64_t, bool);
template void router_forward<double>(const double*, double*, int32_t*, double*, int64_t, int64_t, int64_t, bool);
template void router_backward<float>(const float*, const int32_t*, const float*, const float*, const float*,
                                     float*, int64_t, int64_t, int64_t, bool);
template void router_backward<double>(const double*, const int32_t*, const double*, const double*,
                                      const double*, double*, int64_t, int64_t, int64_t, bool);

}  // namespace flywheel::ops
