#include "ops/gemm.h"

#include <cblas.h>

namespace flywheel::ops {
namespace {
CBLAS_TRANSPOSE to_cblas(bool trans) { return trans ? CblasTrans : CblasNoTrans; }

void cblas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void cblas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, to_cblas(ta), to_cblas(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace

template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <typename T>
void linear_forward(const T* x, const T* weight, T* y, int64_t n, int64_t in, int64_t out) {
  gemm<T>(false, true, n, out, in, T(1), x, in, weight, in, T(0), y, out);
}

template <typename T>
void linear_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, int64_t n, int64_t in,
                     int64_t out, bool accumulate_dx) {
  if (dx) gemm<T>(false, false, n, in, out, T(1), dy, out, weight, in, accumulate_dx ? T(1) : T(0), dx, in);
  if (dweight) gemm<T>(true, false, out, in, n, T(1), dy, out, x, in, T(1), dweight, in);
}

#define FW_INSTANTIATE(T)                                                                                 \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, \
                        T*, int64_t);                                                                     \
  template void linear_forward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t);                     \
  template void linear_backward<T>(const T*, const T*, const T*, T*, T*, int64_t, int64_t, int64_t, bool);
FW_INSTANTIATE(float)
FW_INSTANTIATE(double)
#undef FW_INSTANTIATE

}  // namespace flywheel::ops
