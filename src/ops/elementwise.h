// Elementwise and row-movement ops: residual adds, scaling, and copying rows by index (the token
// permutations of mixture-of-experts dispatch). Each output element is written by one thread with
// one IEEE operation, so results do not depend on the thread count.
#pragma once

#include <cstdint>

namespace flywheel::ops {

// out[i] = a[i] + b[i]  (out may alias a or b).
template <typename T>
void add(const T* a, const T* b, T* out, int64_t n);
// x[i] += y[i].
template <typename T>
void add_in_place(T* x, const T* y, int64_t n);
// x[i] *= factor.
template <typename T>
void scale_in_place(T* x, int64_t n, T factor);
// x[i] = value.
template <typename T>
void fill(T* x, int64_t n, T value);
// out[r, :] = row[:] for r < rows.
template <typename T>
void broadcast_row(const T* row, T* out, int64_t rows, int64_t d);
// y[r, j] += bias[j] for r < rows, j < d (a linear layer's bias).
template <typename T>
void add_row_bias(T* y, const T* bias, int64_t rows, int64_t d);
// dbias[j] += sum_r dy[r, j]: the bias gradient. Each column is summed by one thread in row order, so
// the result does not depend on the thread count.
template <typename T>
void row_bias_backward(const T* dy, T* dbias, int64_t rows, int64_t d);
// dst[i, :] = src[index[i], :] for i < rows (rows of width d).
template <typename T>
void gather_rows(const T* src, const int64_t* index, T* dst, int64_t rows, int64_t d);
// dst[index[i], :] = src[i, :] for i < rows; index must not repeat.
template <typename T>
void scatter_rows(const T* src, const int64_t* index, T* dst, int64_t rows, int64_t d);

}  // namespace flywheel::ops
