// SwiGLU feed-forward network: y = down( silu(gate(x)) * up(x) ), weights in Hugging Face layout
// gate/up [hidden, d], down [d, hidden]. Used for the dense MLP, every MoE expert and the shared expert.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "core/buffer.h"
#include "core/tensor.h"
#include "model/adapted_linear.h"

namespace flywheel {

struct SwiGluWeights {
  Tensor gate, up, down;
  LoraAdapters gate_lora, up_lora, down_lora;  // active where cfg.lora targets them
};
// Null where frozen or absent.
struct SwiGluGrads {
  float* gate;
  float* up;
  float* down;
  LoraGrads gate_lora, up_lora, down_lora;
};

// What backward needs from forward for n rows: the gate and up projections and the gated product.
struct SwiGluActivations {
  Buffer<float> gate, up, act;  // [n, hidden] each
  void resize(int64_t n, int64_t hidden);
};

// y[n, d] = FFN(x[n, d]) (overwrites y) with the forward matmul kernel (ModelConfig::forward_kernels).
void swiglu_ffn_forward(Backend& backend, LinearKernel kernel, const SwiGluWeights& w, const float* x, float* y,
                        int64_t n, int64_t d, int64_t hidden, SwiGluActivations& saved);

// dx[n, d] (+)= d/dx, weight grads accumulate. Reuses saved.gate/up as scratch (they are dead after this).
// kernel: the forward's (an adapter's input projection is recomputed with it).
void swiglu_ffn_backward(Backend& backend, LinearKernel kernel, const SwiGluWeights& w, const SwiGluGrads& g,
                         const float* x, const float* dy, float* dx, int64_t n, int64_t d, int64_t hidden,
                         SwiGluActivations& saved, bool accumulate_dx);

}  // namespace flywheel
