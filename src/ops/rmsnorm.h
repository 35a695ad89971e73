// RMSNorm (Zhang & Sennrich 2019): y = x / sqrt(mean(x^2) + eps) * w, per row of width d.
#pragma once

#include <cstdint>

namespace flywheel::ops {

// y[n, d]; rstd[n] = 1 / sqrt(mean(x^2) + eps) is saved for backward.
template <typename T>
void rmsnorm_forward(const T* x, const T* weight, T* y, T* rstd, int64_t n, int64_t d, double eps);

// dx[n, d] = (overwritten); dweight[d] += sum over rows of dy * x * rstd (skipped when dweight is null).
// With xhat = x * rstd: dx = rstd * (dy*w - xhat * mean(dy*w*xhat)).
template <typename T>
void rmsnorm_backward(const T* x, const T* weight, const T* rstd, const T* dy, T* dx, T* dweight, int64_t n,
                      int64_t d);

}  // namespace flywheel::ops
