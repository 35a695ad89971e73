#include "ops/rmsnorm.h"

#include <omp.h>

#include <cmath>
#include <vector>

namespace flywheel::ops {

template <typename T>
void rmsnorm_forward(const T* x, const T* weight, T* y, T* rstd, int64_t n, int64_t d, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const T* xr = x + row * d;
    T* yr = y + row * d;
    T sum_sq = 0;
    for (int64_t i = 0; i < d; ++i) sum_sq += xr[i] * xr[i];
    const T r = T(1) / std::sqrt(sum_sq / T(d) + T(eps));
    rstd[row] = r;
    for (int64_t i = 0; i < d; ++i) yr[i] = xr[i] * r * weight[i];
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* rstd, const T* dy, T* dx, T* dweight, int64_t n,
                      int64_t d) {
  // The weight gradient is a sum over rows; to stay deterministic each thread sums a fixed,
  // contiguous block of rows into its own partial, and the partials are added in thread order.
  const int threads = omp_get_max_threads();
  std::vector<T> partial(static_cast<size_t>(threads) * d, T(0));
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num();
    const int64_t begin = n * tid / threads, end = n * (tid + 1) / threads;
    T* dw = partial.data() + static_cast<size_t>(tid) * d;
    for (int64_t row = begin; row < end; ++row) {
      const T* xr = x + row * d;
      const T* dyr = dy + row * d;
      T* dxr = dx + row * d;
      const T r = rstd[row];
      T dot = 0;  // sum_i dy_i * w_i * xhat_i
      for (int64_t i = 0; i < d; ++i) dot += dyr[i] * weight[i] * xr[i] * r;
      const T mean_dot = dot / T(d);
      for (int64_t i = 0; i < d; ++i) {
        const T xhat = xr[i] * r;
        dxr[i] = r * (dyr[i] * weight[i] - xhat * mean_dot);
        if (dweight) dw[i] += dyr[i] * xhat;
      }
    }
  }
  if (!dweight) return;  // a frozen gain: only dx
  for (int t = 0; t < threads; ++t)
    for (int64_t i = 0; i < d; ++i) dweight[i] += partial[static_cast<size_t>(t) * d + i];
}

template void rmsnorm_forward<float>(const float*, const float*, float*, float*, int64_t, int64_t, double);
template void rmsnorm_forward<double>(const double*, const double*, double*, double*, int64_t, int64_t, double);
template void rmsnorm_backward<float>(const float*, const float*, const float*, const float*, float*, float*,
                                      int64_t, int64_t);
template void rmsnorm_backward<double>(const double*, const double*, const double*, const double*, double*,
                                       double*, int64_t, int64_t);

}  // namespace flywheel::ops
