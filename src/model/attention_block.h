// The attention half of a decoder layer:
//   h = RMSNorm(x);  q, k, v = h Wq^T, h Wk^T, h Wv^T;  RoPE(q, k);  a = attention(q, k, v);
//   x_out = x + a Wo^T
// The AttentionContext (attention_context.h) says where each row sits and runs attention itself:
// over the rows' own sequences, a context-parallel split, or a KV cache.
#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "core/buffer.h"
#include "core/tensor.h"
#include "model/attention_context.h"
#include "model/config.h"

namespace flywheel {

struct AttentionWeights {
  Tensor norm, q, k, v, o;
};
struct AttentionGrads {
  float *norm, *q, *k, *v, *o;
};

struct AttentionActivations {
  Buffer<float> normed;      // [n, d]
  Buffer<float> rstd;        // [n]
  Buffer<float> q, k, v;     // after RoPE: [n, n_heads * hd], [n, n_kv * hd] x2
  Buffer<float> attn;        // [n, n_heads * hd]
  Buffer<float> lse;         // [batch * n_heads * seq], laid out as the context writes it
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
