// The attention half of a decoder layer:
//   h = RMSNorm(x);  q, k, v = h Wq^T + bq, h Wk^T + bk, h Wv^T + bv   (biases: attention_bias)
//   q, k = RMSNorm_hd(q), RMSNorm_hd(k) per head                        (qk_norm: Qwen3 q_norm / k_norm)
//   RoPE(q, k);  a = attention(q, k, v);  x_out = x + a Wo^T + bo
// The AttentionContext (attention_context.h) says where each row sits and runs attention itself:
// over the rows' own sequences, a context-parallel split, or a KV cache.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "core/buffer.h"
#include "core/tensor.h"
#include "model/adapted_linear.h"
#include "model/attention_context.h"
#include "model/config.h"

namespace flywheel {

// q_norm / k_norm are defined with cfg.qk_norm, the four biases with cfg.attention_bias, the adapters with
// cfg.lora's targets.
struct AttentionWeights {
  Tensor norm, q, k, v, o;
  Tensor q_norm, k_norm;
  Tensor q_bias, k_bias, v_bias, o_bias;
  LoraAdapters q_lora, k_lora, v_lora, o_lora;
};
// Null where the weight does not exist or is frozen.
struct AttentionGrads {
  float *norm, *q, *k, *v, *o;
  float *q_norm = nullptr, *k_norm = nullptr;
  float *q_bias = nullptr, *k_bias = nullptr, *v_bias = nullptr, *o_bias = nullptr;
  LoraGrads q_lora, k_lora, v_lora, o_lora;
};

struct AttentionActivations {
  Buffer<float> normed;      // [n, d]
  Buffer<float> rstd;        // [n]
  Buffer<float> q, k, v;     // after RoPE: [n, n_heads * hd], [n, n_kv * hd] x2
  Buffer<float> attn;        // [n, n_heads * hd]
  Buffer<float> lse;         // [batch * n_heads * seq], laid out as the context writes it
  // qk_norm: the projections before the head norm, and its 1 / rms per (row, head).
  Buffer<float> q_raw, k_raw;    // [n, n_heads * hd], [n, n_kv * hd]
  Buffer<float> q_rstd, k_rstd;  // [n * n_heads], [n * n_kv]
};

AttentionHeads attention_heads(const ModelConfig& cfg);

// x_out[n, d] = x + attention(x) for the batch x seq rows of layer `layer`; x and x_out may not alias.
void attention_block_forward(Backend& backend, const ModelConfig& cfg, const ops::RopeTable<float>& rope,
                             const AttentionWeights& w, AttentionContext& context, int layer, const float* x,
                             float* x_out, int64_t batch, int64_t seq, AttentionActivations& act);

// dx[n, d] = dx_out + d(attention path)/dx. Weight grads accumulate.
void attention_block_backward(Backend& backend, const ModelConfig& cfg, const ops::RopeTable<float>& rope,
                              const AttentionWeights& w, const AttentionGrads& g, AttentionContext& context, int layer,
                              const float* x, const float* dx_out, float* dx, int64_t batch, int64_t seq,
                              AttentionActivations& act);

}  // namespace flywheel
