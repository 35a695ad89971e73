#include "ops/cross_entropy.h"

#include <cmath>
#include <vector>

#include "core/error.h"

namespace flywheel::ops {

template <typename T>
double cross_entropy(T* logits, const int32_t* targets, const float* weights, int64_t n, int64_t vocab,
                     bool compute_grad, T* target_logprob) {
  std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
  bool bad_target = false;
#pragma omp parallel for schedule(static) reduction(|| : bad_target)
  for (int64_t r = 0; r < n; ++r) {
    T* row = logits + r * vocab;
    const int32_t target = targets[r];
    if (target < 0 || target >= vocab) {
      bad_target = true;
      continue;
    }
    T max_logit = row[0];
    for (int64_t i = 1; i < vocab; ++i) max_logit = row[i] > max_logit ? row[i] : max_logit;
    T sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(row[i] - max_logit);
    const T lse = max_logit + std::log(sum);
    const T logp = row[target] - lse;
    if (target_logprob) target_logprob[r] = logp;
    const T w = static_cast<T>(weights[r]);
    row_loss[r] = -static_cast<double>(w) * static_cast<double>(logp);
    if (compute_grad) {
      if (w == T(0)) {
        for (int64_t i = 0; i < vocab; ++i) row[i] = T(0);
      } else {
        for (int64_t i = 0; i < vocab; ++i) row[i] = w * std::exp(row[i] - lse);
        row[target] -= w;
      }
    }
  }
  FW_CHECK(!bad_target, "cross_entropy: a target id is outside the vocabulary [0, ", vocab, ")");
  double loss = 0;  // summed in row order: deterministic whatever the thread count
  for (double v : row_loss) loss += v;
  return loss;
}

template double cross_entropy<float>(float*, const int32_t*, const float*, int64_t, int64_t, bool, float*);
template double cross_entropy<double>(double*, const int32_t*, const float*, int64_t, int64_t, bool, double*);

}  // namespace flywheel::ops
