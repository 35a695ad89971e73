// One linear layer of the model with its optional LoRA adapter (model/lora_config.h), forward and backward:
//   y = x W^T + s * (x A^T) B^T,   W [out, in], A [rank, in], B [out, rank]
// The adapter's two matrices run with the forward kernel of the base (ModelConfig::forward_kernels), so a serving
// replica that applies the unmerged adapter with this code reproduces the trainer's bits in exact mode. The order of
// the sum is PEFT's (base first, then the adapter's product times s). Backward recomputes u = x A^T rather than
// keeping it (rank columns per row: one small GEMM).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"

namespace flywheel {

// One adapter of a layer: `rows` null applies it to every row (training, one adapter served); otherwise to those
// rows of the batch only (a serving replica's decode batch mixing sequences of several adapters).
struct LoraAdapter {
  Tensor a, b;         // [rank, in], [out, rank]
  float scale = 0.0f;  // s
  const std::vector<int64_t>* rows = nullptr;
  int64_t rank() const { return a.shape()[0]; }
};
// The adapters of one layer, applied in order after the base product; empty: the base weight alone (no adapter,
// or adapters switched off). Rows of different entries do not overlap.
using LoraAdapters = std::vector<LoraAdapter>;
// Null where the adapter does not exist.
struct LoraGrads {
  float* a = nullptr;
  float* b = nullptr;
};

// y[n, out] = x W^T + adapters (overwrites y). A row subset's adapter runs on those rows gathered: with the
// batch-invariant kernel each row's bits are those of the same adapter applied to every row.
void adapted_linear(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                    const LoraAdapters& loras, float* y, int64_t n, int64_t in, int64_t out);
// y[n, out] = residual + x W^T + adapters (y aliases neither input).
void adapted_linear_residual(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                             const LoraAdapters& loras, const float* residual, float* y, int64_t n, int64_t in,
                             int64_t out);
// dx[n, in] = (or += with accumulate_dx) dy W + s (dy B) A;  dW += dy^T x unless dweight is null (a frozen base);
// dB += s dy^T u and dA += s (dy B)^T x with u = x A^T, for the one all-rows adapter training has (if any).
void adapted_linear_backward(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                             const LoraAdapters& loras, const LoraGrads& lora_grads, const float* dy, float* dx,
                             float* dweight, int64_t n, int64_t in, int64_t out, bool accumulate_dx);

}  // namespace flywheel
