#include "ops/adamw.h"

#include <cmath>
#include <vector>

namespace flywheel::ops {

template <typename T>
void adamw_update(T* param, const T* grad, T* m, T* v, int64_t n, const AdamWHyper& h) {
  const T b1 = static_cast<T>(h.beta1), b2 = static_cast<T>(h.beta2);
  const T lr = static_cast<T>(h.lr), eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay);
  const T bias1 = static_cast<T>(1.0 - std::pow(h.beta1, static_cast<double>(h.step)));
  const T bias2 = static_cast<T>(1.0 - std::pow(h.beta2, static_cast<double>(h.step)));
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const T g = grad[i];
    const T mi = b1 * m[i] + (T(1) - b1) * g;
    const T vi = b2 * v[i] + (T(1) - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const T update = (mi / bias1) / (std::sqrt(vi / bias2) + eps) + wd * param[i];
    param[i] -= lr * update;
  }
}

template <typename T>
double sum_of_squares(const T* x, int64_t n) {
  // Fixed blocks (not per-thread shares) so the summation order does not depend on thread count.
  constexpr int64_t kBlock = 1 << 16;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0;
    const int64_t end = std::min(n, (b + 1) * kBlock);
    for (int64_t i = b * kBlock; i < end; ++i) s += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    partial[b] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

template void adamw_update<float>(float*, const float*, float*, float*, int64_t, const AdamWHyper&);
template void adamw_update<double>(double*, const double*, double*, double*, int64_t, const AdamWHyper&);
template double sum_of_squares<float>(const float*, int64_t);
template double sum_of_squares<double>(const double*, int64_t);

}  // namespace flywheel::ops
