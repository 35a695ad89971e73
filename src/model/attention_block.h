// The attention half of a decoder layer:
//   h = RMSNorm(x);  q, k, v = h Wq^T, h Wk^T, h Wv^T;  RoPE(q, k);  a = causal_gqa(q, k, v);
//   x_out = x + a Wo^T
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "model/config.h"
#include "ops/rope.h"
#include "parallel/context_parallel.h"

namespace flywheel {

struct AttentionWeights {
  const float *norm, *q, *k, *v, *o;
};
struct AttentionGrads {
  float *norm, *q, *k, *v, *o;
};

struct AttentionActivations {
  Buffer<float> normed;      // [n, d]
  Buffer<float> rstd;        // [n]
  Buffer<float> q, k, v;     // after RoPE: [n, n_heads * hd], [n, n_kv * hd] x2
  Buffer<float> attn;        // [n, n_heads * hd]
  Buffer<float> lse;         // [batch, n_heads, seq]; under context parallelism [2 halves][batch, n_heads, seq/2]
};

// x_out[n, d] = x + attention(x); x and x_out may not alias. Under context parallelism (split
// active) the seq tokens of each row are this rank's two chunks of a longer sequence.
void attention_block_forward(const ModelConfig& cfg, const ops::RopeTable<float>& rope, const AttentionWeights& w,
                             const float* x, float* x_out, int64_t batch, int64_t seq, AttentionActivations& act,
                             const ContextSplit& split = {});

// x_out[n, d] = x + attn[n, q_width] Wo^T: the block's output projection and residual, shared with
// the KV-cache decoder so that both round identically. x_out may alias neither.
void attention_output_residual(bool invariant, const float* attn, const float* o_weight, const float* x,
                               float* x_out, int64_t n, int64_t d, int64_t q_width);

// dx[n, d] = dx_out + d(attention path)/dx. Weight grads accumulate.
void attention_block_backward(const ModelConfig& cfg, const ops::RopeTable<float>& rope, const AttentionWeights& w,
                              const AttentionGrads& g, const float* x, const float* dx_out, float* dx, int64_t batch,
                              int64_t seq, AttentionActivations& act, const ContextSplit& split = {});

}  // namespace flywheel
