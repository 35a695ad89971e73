#include "model/attention_block.h"

#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/rmsnorm.h"

namespace flywheel {
namespace {
ops::AttentionShape attention_shape(const ModelConfig& cfg, int64_t batch, int64_t seq) {
  return {batch, seq, cfg.n_heads, cfg.n_kv_heads, cfg.resolved_head_dim()};
}
}  // namespace

void attention_block_forward(const ModelConfig& cfg, const ops::RopeTable<float>& rope, const AttentionWeights& w,
                             const float* x, float* x_out, int64_t batch, int64_t seq, AttentionActivations& act) {
  const int64_t n = batch * seq, d = cfg.d_model, hd = cfg.resolved_head_dim();
  const int64_t q_width = cfg.n_heads * hd, kv_width = cfg.n_kv_heads * hd;
  act.normed.resize(n * d);
  act.rstd.resize(n);
  act.q.resize(n * q_width);
  act.k.resize(n * kv_width);
  act.v.resize(n * kv_width);
  act.attn.resize(n * q_width);
  act.lse.resize(batch * cfg.n_heads * seq);

  ops::rmsnorm_forward(x, w.norm, act.normed.data(), act.rstd.data(), n, d, cfg.norm_eps);
  ops::linear_forward(act.normed.data(), w.q, act.q.data(), n, d, q_width);
  ops::linear_forward(act.normed.data(), w.k, act.k.data(), n, d, kv_width);
  ops::linear_forward(act.normed.data(), w.v, act.v.data(), n, d, kv_width);
  ops::rope_apply(rope, act.q.data(), batch, seq, cfg.n_heads);
  ops::rope_apply(rope, act.k.data(), batch, seq, cfg.n_kv_heads);
  ops::attention_forward(attention_shape(cfg, batch, seq), act.q.data(), act.k.data(), act.v.data(),
                         act.attn.data(), act.lse.data());
  // x_out = x + attn Wo^T: copy the residual, then let the GEMM accumulate into it (beta = 1).
  std::copy(x, x + n * d, x_out);
  ops::gemm<float>(false, true, n, d, q_width, 1.0f, act.attn.data(), q_width, w.o, q_width, 1.0f, x_out, d);
}

void attention_block_backward(const ModelConfig& cfg, const ops::RopeTable<float>& rope, const AttentionWeights& w,
                              const AttentionGrads& g, const float* x, const float* dx_out, float* dx, int64_t batch,
                              int64_t seq, AttentionActivations& act) {
  const int64_t n = batch * seq, d = cfg.d_model, hd = cfg.resolved_head_dim();
  const int64_t q_width = cfg.n_heads * hd, kv_width = cfg.n_kv_heads * hd;

  Buffer<float> dattn(n * q_width), dq(n * q_width), dk(n * kv_width), dv(n * kv_width);
  ops::linear_backward(act.attn.data(), w.o, dx_out, dattn.data(), g.o, n, q_width, d);
  ops::attention_backward(attention_shape(cfg, batch, seq), act.q.data(), act.k.data(), act.v.data(),
                          act.attn.data(), act.lse.data(), dattn.data(), dq.data(), dk.data(), dv.data());
  // RoPE is a rotation: its backward rotates the gradient back.
  ops::rope_apply(rope, dq.data(), batch, seq, cfg.n_heads, 0, /*inverse=*/true);
  ops::rope_apply(rope, dk.data(), batch, seq, cfg.n_kv_heads, 0, /*inverse=*/true);

  Buffer<float> dnormed(n * d);
  ops::linear_backward(act.normed.data(), w.q, dq.data(), dnormed.data(), g.q, n, d, q_width, false);
  ops::linear_backward(act.normed.data(), w.k, dk.data(), dnormed.data(), g.k, n, d, kv_width, true);
  ops::linear_backward(act.normed.data(), w.v, dv.data(), dnormed.data(), g.v, n, d, kv_width, true);
  ops::rmsnorm_backward(x, w.norm, act.rstd.data(), dnormed.data(), dx, g.norm, n, d);
  // Residual: the stream's own gradient passes straight through.
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n * d; ++i) dx[i] += dx_out[i];
}

}  // namespace flywheel
