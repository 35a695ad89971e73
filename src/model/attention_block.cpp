#include "model/attention_block.h"

#include <vector>

namespace flywheel {

AttentionHeads attention_heads(const ModelConfig& cfg) {
  return {cfg.n_heads, cfg.n_kv_heads, cfg.resolved_head_dim()};
}

void attention_block_forward(Backend& backend, const ModelConfig& cfg, const ops::RopeTable<float>& rope,
                             const AttentionWeights& w, AttentionContext& context, int layer, const float* x,
                             float* x_out, int64_t batch, int64_t seq, AttentionActivations& act) {
  const AttentionHeads heads = attention_heads(cfg);
  const int64_t n = batch * seq, d = cfg.d_model, q_width = heads.q_width(), kv_width = heads.kv_width();
  act.normed.resize(n * d);
  act.rstd.resize(n);
  act.q.resize(n * q_width);
  act.k.resize(n * kv_width);
  act.v.resize(n * kv_width);
  act.attn.resize(n * q_width);
  act.lse.resize(batch * cfg.n_heads * seq);

  backend.rmsnorm(x, w.norm, act.normed.data(), act.rstd.data(), n, d, cfg.norm_eps);
  const LinearKernel kernel = cfg.forward_kernel();
  backend.linear(kernel, act.normed.data(), w.q, act.q.data(), n, d, q_width);
  backend.linear(kernel, act.normed.data(), w.k, act.k.data(), n, d, kv_width);
  backend.linear(kernel, act.normed.data(), w.v, act.v.data(), n, d, kv_width);
  const std::vector<int64_t> positions = context.positions(batch, seq);
  backend.rope(rope, act.q.data(), n, cfg.n_heads, positions.data(), false);
  backend.rope(rope, act.k.data(), n, cfg.n_kv_heads, positions.data(), false);
  context.forward(backend, layer, heads, batch, seq, act.q.data(), act.k.data(), act.v.data(), act.attn.data(),
                  act.lse.data());
  backend.linear_residual(kernel, act.attn.data(), w.o, x, x_out, n, q_width, d);
}

void attention_block_backward(Backend& backend, const ModelConfig& cfg, const ops::RopeTable<float>& rope,
                              const AttentionWeights& w, const AttentionGrads& g, AttentionContext& context, int layer,
                              const float* x, const float* dx_out, float* dx, int64_t batch, int64_t seq,
                              AttentionActivations& act) {
  const AttentionHeads heads = attention_heads(cfg);
  const int64_t n = batch * seq, d = cfg.d_model, q_width = heads.q_width(), kv_width = heads.kv_width();

  Buffer<float> dattn(n * q_width), dq(n * q_width), dk(n * kv_width), dv(n * kv_width);
  backend.linear_backward(act.attn.data(), w.o.data<float>(), dx_out, dattn.data(), g.o, n, q_width, d, false);
  context.backward(backend, layer, heads, batch, seq, act.q.data(), act.k.data(), act.v.data(), act.attn.data(),
                   act.lse.data(), dattn.data(), dq.data(), dk.data(), dv.data());
  // RoPE is a rotation: its backward rotates the gradient back.
  const std::vector<int64_t> positions = context.positions(batch, seq);
  backend.rope(rope, dq.data(), n, cfg.n_heads, positions.data(), true);
  backend.rope(rope, dk.data(), n, cfg.n_kv_heads, positions.data(), true);

  Buffer<float> dnormed(n * d);
  backend.linear_backward(act.normed.data(), w.q.data<float>(), dq.data(), dnormed.data(), g.q, n, d, q_width, false);
  backend.linear_backward(act.normed.data(), w.k.data<float>(), dk.data(), dnormed.data(), g.k, n, d, kv_width, true);
  backend.linear_backward(act.normed.data(), w.v.data<float>(), dv.data(), dnormed.data(), g.v, n, d, kv_width, true);
  backend.rmsnorm_backward(x, w.norm.data<float>(), act.rstd.data(), dnormed.data(), dx, g.norm, n, d);
  // Residual: the stream's own gradient passes straight through.
  backend.add_in_place(dx, dx_out, n * d);
}

}  // namespace flywheel
