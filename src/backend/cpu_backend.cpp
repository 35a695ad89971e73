#include "backend/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/bf16.h"
#include "core/buffer.h"
#include "core/error.h"
#include "ops/cross_entropy.h"
#include "ops/elementwise.h"
#include "ops/embedding.h"
#include "ops/gemm.h"
#include "ops/linear_invariant.h"
#include "ops/moe_router.h"
#include "ops/moe_slots.h"
#include "ops/rmsnorm.h"
#include "ops/swiglu.h"

namespace flywheel {
namespace {

void check_weight(const Tensor& weight, int64_t numel, const char* op) {
  FW_CHECK(weight.device() == Device::kHost, op, ": weight on device ", device_name(weight.device()),
           "; the cpu backend reads host memory");
  FW_CHECK(weight.numel() == numel, op, ": weight of shape ", shape_text(weight.shape()), " has ", weight.numel(),
           " elements, expected ", numel);
  FW_CHECK(weight.dtype() == DType::kF32 || weight.dtype() == DType::kBF16, op, ": weight dtype ",
           dtype_name(weight.dtype()), "; the cpu backend reads f32 or bf16 weights");
}

// A small weight (a norm gain) widened to fp32: exact for bf16.
std::vector<float> widened(const Tensor& weight) {
  std::vector<float> out(static_cast<size_t>(weight.numel()));
  bf16_to_fp32(weight.data<BFloat16>(), out.data(), weight.numel());
  return out;
}

}  // namespace

void CpuBackend::linear(LinearKernel kernel, const float* x, const Tensor& weight, float* y, int64_t n, int64_t in,
                        int64_t out) {
  check_weight(weight, in * out, "linear");
  if (weight.dtype() == DType::kBF16) {
    FW_CHECK(kernel == LinearKernel::kInvariant, "linear: bf16 weights need the invariant kernel on the cpu backend");
    ops::linear_forward_invariant(x, weight.data<BFloat16>(), y, n, in, out);
  } else if (kernel == LinearKernel::kInvariant) {
    ops::linear_forward_invariant(x, weight.data<float>(), y, n, in, out);
  } else {
    ops::linear_forward<float>(x, weight.data<float>(), y, n, in, out);
  }
}

void CpuBackend::linear_residual(LinearKernel kernel, const float* x, const Tensor& weight, const float* residual,
                                 float* y, int64_t n, int64_t in, int64_t out) {
  if (kernel == LinearKernel::kBlas && weight.dtype() == DType::kF32) {
    check_weight(weight, in * out, "linear_residual");
    // y = residual + x W^T: copy the residual, then let the GEMM accumulate into it (beta = 1).
    std::copy(residual, residual + n * out, y);
    ops::gemm<float>(false, true, n, out, in, 1.0f, x, in, weight.data<float>(), in, 1.0f, y, out);
    return;
  }
  // The product alone, then one rounding per element for the residual add, so a row's bits do not
  // depend on how a GEMM would fold beta * C into its own reduction.
  linear(kernel, x, weight, y, n, in, out);
  ops::add(residual, y, y, n * out);
}

void CpuBackend::linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                                 int64_t n, int64_t in, int64_t out, bool accumulate_dx) {
  ops::linear_backward<float>(x, weight, dy, dx, dweight, n, in, out, accumulate_dx);
}

void CpuBackend::rmsnorm(const float* x, const Tensor& weight, float* y, float* rstd, int64_t n, int64_t d,
                         double eps) {
  check_weight(weight, d, "rmsnorm");
  if (weight.dtype() == DType::kBF16) {
    const std::vector<float> w = widened(weight);
    ops::rmsnorm_forward<float>(x, w.data(), y, rstd, n, d, eps);
  } else {
    ops::rmsnorm_forward<float>(x, weight.data<float>(), y, rstd, n, d, eps);
  }
}

void CpuBackend::rmsnorm_backward(const float* x, const float* weight, const float* rstd, const float* dy, float* dx,
                                  float* dweight, int64_t n, int64_t d) {
  ops::rmsnorm_backward<float>(x, weight, rstd, dy, dx, dweight, n, d);
}

void CpuBackend::rope(const ops::RopeTable<float>& table, float* x, int64_t rows, int64_t heads,
                      const int64_t* positions, bool inverse) {
  ops::rope_apply_at(table, x, 1, rows, heads, positions, inverse);
}

void CpuBackend::attention(const ops::AttentionShape& shape, const float* q, const float* k, const float* v,
                           float* out, float* lse) {
  ops::attention_forward<float>(shape, q, k, v, out, lse);
}

void CpuBackend::attention_backward(const ops::AttentionShape& shape, const float* q, const float* k, const float* v,
                                    const float* out, const float* lse, const float* dout, float* dq, float* dk,
                                    float* dv) {
  ops::attention_backward<float>(shape, q, k, v, out, lse, dout, dq, dk, dv);
}

void CpuBackend::swiglu(const float* gate, const float* up, float* out, int64_t n) {
  ops::swiglu_forward<float>(gate, up, out, n);
}

void CpuBackend::swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                                 int64_t n) {
  ops::swiglu_backward<float>(gate, up, dout, dgate, dup, n);
}

void CpuBackend::add(const float* a, const float* b, float* out, int64_t n) { ops::add(a, b, out, n); }
void CpuBackend::add_in_place(float* x, const float* y, int64_t n) { ops::add_in_place(x, y, n); }
void CpuBackend::scale_in_place(float* x, int64_t n, float factor) { ops::scale_in_place(x, n, factor); }
void CpuBackend::fill(float* x, int64_t n, float value) { ops::fill(x, n, value); }

void CpuBackend::add_bias(float* y, const Tensor& bias, int64_t rows, int64_t d) {
  check_weight(bias, d, "add_bias");
  if (bias.dtype() == DType::kF32) {
    ops::add_row_bias<float>(y, bias.data<float>(), rows, d);
  } else {
    const std::vector<float> b = widened(bias);
    ops::add_row_bias<float>(y, b.data(), rows, d);
  }
}

void CpuBackend::bias_backward(const float* dy, float* dbias, int64_t rows, int64_t d) {
  ops::row_bias_backward<float>(dy, dbias, rows, d);
}

void CpuBackend::embedding(const Tensor& table, const int32_t* tokens, float* out, int64_t n, int64_t d,
                           int64_t vocab) {
  check_weight(table, vocab * d, "embedding");
  if (table.dtype() == DType::kF32) {
    ops::embedding_forward<float>(table.data<float>(), tokens, out, n, d, vocab);
    return;
  }
  for (int64_t r = 0; r < n; ++r)
    FW_CHECK(tokens[r] >= 0 && tokens[r] < vocab, "token id ", tokens[r], " at position ", r,
             " is outside the vocabulary [0, ", vocab, ")");
  const BFloat16* rows = table.data<BFloat16>();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) bf16_to_fp32(rows + tokens[r] * d, out + r * d, d);
}

void CpuBackend::embedding_backward(const int32_t* tokens, const float* dout, float* dtable, int64_t n, int64_t d) {
  ops::embedding_backward<float>(tokens, dout, dtable, n, d);
}

double CpuBackend::cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t n,
                                 int64_t vocab, bool compute_grad, float* target_logprob) {
  return ops::cross_entropy<float>(logits, targets, weights, n, vocab, compute_grad, target_logprob);
}

void CpuBackend::router(const float* logits, float* probs, int32_t* expert, float* weight, int64_t n,
                        int64_t experts, int64_t top_k, bool normalize) {
  ops::router_forward<float>(logits, probs, expert, weight, n, experts, top_k, normalize);
}

void CpuBackend::router_backward(const float* probs, const int32_t* expert, const float* weight, const float* dweight,
                                 const float* dprobs_extra, float* dlogits, int64_t n, int64_t experts, int64_t top_k,
                                 bool normalize) {
  ops::router_backward<float>(probs, expert, weight, dweight, dprobs_extra, dlogits, n, experts, top_k, normalize);
}

void CpuBackend::gather_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) {
  ops::gather_rows(src, index, dst, rows, d);
}

void CpuBackend::scatter_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) {
  ops::scatter_rows(src, index, dst, rows, d);
}

void CpuBackend::combine_slots(const float* slots, const float* weight, float* y, int64_t n, int64_t k, int64_t d) {
  ops::combine_slots(slots, weight, y, n, k, d);
}

void CpuBackend::combine_slots_backward(const float* slots, const float* weight, const float* dy, float* dslots,
                                        float* dweight, int64_t n, int64_t k, int64_t d) {
  ops::combine_slots_backward(slots, weight, dy, dslots, dweight, n, k, d);
}

void CpuBackend::routing_statistics(const int32_t* expert_of_slot, const float* probs, int64_t n, int64_t experts,
                                    int64_t top_k, double* stats) {
  ops::routing_statistics(expert_of_slot, probs, n, experts, top_k, stats);
}

void CpuBackend::broadcast_row(const float* row, float* out, int64_t rows, int64_t d) {
  ops::broadcast_row(row, out, rows, d);
}

void CpuBackend::adamw(float* param, const float* grad, float* m, float* v, int64_t n, const ops::AdamWHyper& hyper) {
  ops::adamw_update<float>(param, grad, m, v, n, hyper);
}

double CpuBackend::sum_of_squares(const float* x, int64_t n) { return ops::sum_of_squares<float>(x, n); }

Backend& cpu_backend() {
  static CpuBackend backend;
  return backend;
}

std::vector<Backend*> registered_backends() { return {&cpu_backend()}; }

}  // namespace flywheel
