// Row-major GEMM through CBLAS (OpenBLAS), for fp32 (sgemm) and fp64 (dgemm: the float64
// oracle used by the finite-difference tests), and the two products every linear layer needs.
#pragma once

#include <cstdint>

namespace flywheel::ops {

// C[M,N] = alpha * op(A) * op(B) + beta * C, all row-major; op(X) = X or X^T.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Linear layer with Hugging Face weight layout W[out, in]:  y[n, out] = x[n, in] * W^T.
template <typename T>
void linear_forward(const T* x, const T* weight, T* y, int64_t n, int64_t in, int64_t out);

// dx[n, in] (+)= dy[n, out] * W   (accumulate_dx chooses += over =)
// dW[out, in] += dy^T * x         (weight gradients always accumulate: micro-batches add up)
template <typename T>
void linear_backward(const T* x, const T* weight, const T* dy, T* dx, T* dweight, int64_t n, int64_t in,
                     int64_t out, bool accumulate_dx = false);

}  // namespace flywheel::ops
