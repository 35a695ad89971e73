#include "ops/elementwise.h"

#include <cstring>

namespace flywheel::ops {

template <typename T>
void add(const T* a, const T* b, T* out, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void add_in_place(T* x, const T* y, int64_t n) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

template <typename T>
void scale_in_place(T* x, int64_t n, T factor) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] *= factor;
}

template <typename T>
void fill(T* x, int64_t n, T value) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

template <typename T>
void broadcast_row(const T* row, T* out, int64_t rows, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) std::memcpy(out + r * d, row, sizeof(T) * d);
}

template <typename T>
void gather_rows(const T* src, const int64_t* index, T* dst, int64_t rows, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + i * d, src + index[i] * d, sizeof(T) * d);
}

template <typename T>
void add_row_bias(T* y, const T* bias, int64_t rows, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < d; ++j) y[r * d + j] += bias[j];
}

template <typename T>
void row_bias_backward(const T* dy, T* dbias, int64_t rows, int64_t d) {
  // Blocks of 64 columns: each thread walks the rows once per block (contiguous reads), and every
  // column's sum still runs over rows 0, 1, ... in order.
  constexpr int64_t kBlock = 64;
#pragma omp parallel for schedule(static)
  for (int64_t j0 = 0; j0 < d; j0 += kBlock) {
    const int64_t j1 = j0 + kBlock < d ? j0 + kBlock : d;
    T sum[kBlock] = {};
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = j0; j < j1; ++j) sum[j - j0] += dy[r * d + j];
    for (int64_t j = j0; j < j1; ++j) dbias[j] += sum[j - j0];
  }
}

template <typename T>
void scatter_rows(const T* src, const int64_t* index, T* dst, int64_t rows, int64_t d) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < rows; ++i) std::memcpy(dst + index[i] * d, src + i * d, sizeof(T) * d);
}

#define FLYWHEEL_ELEMENTWISE(T)                                                   \
  template void add<T>(const T*, const T*, T*, int64_t);                          \
  template void add_in_place<T>(T*, const T*, int64_t);                           \
  template void scale_in_place<T>(T*, int64_t, T);                                \
  template void fill<T>(T*, int64_t, T);                                          \
  template void broadcast_row<T>(const T*, T*, int64_t, int64_t);                 \
  template void add_row_bias<T>(T*, const T*, int64_t, int64_t);                  \
  template void row_bias_backward<T>(const T*, T*, int64_t, int64_t);             \
  template void gather_rows<T>(const T*, const int64_t*, T*, int64_t, int64_t);   \
  template void scatter_rows<T>(const T*, const int64_t*, T*, int64_t, int64_t);
FLYWHEEL_ELEMENTWISE(float)
FLYWHEEL_ELEMENTWISE(double)
#undef FLYWHEEL_ELEMENTWISE

}  // namespace flywheel::ops
