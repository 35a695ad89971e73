#include "model/attention_block.h"

#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/linear_invariant.h"
#include "ops/rmsnorm.h"

namespace flywheel {
namespace {
ops::AttentionShape attention_shape(const ModelConfig& cfg, int64_t batch, int64_t seq) {
  return {batch, seq, cfg.n_heads, cfg.n_kv_heads, cfg.resolved_head_dim()};
}

// Shape of one local half's attention under context parallelism: S queries at their global offset
// against the gathered keys of the whole sequence (later keys are masked and skipped by the op).
ops::AttentionShape half_shape(const ModelConfig& cfg, const ContextSplit& split, int half, int64_t batch,
                               int64_t seq) {
  const int64_t S = seq / 2;
  ops::AttentionShape shape = attention_shape(cfg, batch, S);
  shape.seq_k = 2 * split.ranks() * S;
  shape.q_offset = split.chunk_of(half) * S;
  return shape;
}

void context_parallel_forward(const ModelConfig& cfg, const ContextSplit& split, int64_t batch, int64_t seq,
                              AttentionActivations& act) {
  const int64_t hd = cfg.resolved_head_dim(), qw = cfg.n_heads * hd, kvw = cfg.n_kv_heads * hd;
  const int64_t S = seq / 2, T = 2 * split.ranks() * S;
  Buffer<float> k_all(batch * T * kvw), v_all(batch * T * kvw), q_half(batch * S * qw), out_half(batch * S * qw);
  gather_sequence(split, act.k.data(), k_all.data(), batch, seq, kvw);
  gather_sequence(split, act.v.data(), v_all.data(), batch, seq, kvw);
  for (int half = 0; half < 2; ++half) {
    copy_half_out(act.q.data(), q_half.data(), half, batch, seq, qw);
    ops::attention_forward(half_shape(cfg, split, half, batch, seq), q_half.data(), k_all.data(), v_all.data(),
                           out_half.data(), act.lse.data() + half * batch * cfg.n_heads * S);
    copy_half_in(out_half.data(), act.attn.data(), half, batch, seq, qw);
  }
}

void context_parallel_backward(const ModelConfig& cfg, const ContextSplit& split, int64_t batch, int64_t seq,
                               const AttentionActivations& act, const float* dattn, float* dq, float* dk, float* dv) {
  const int64_t hd = cfg.resolved_head_dim(), qw = cfg.n_heads * hd, kvw = cfg.n_kv_heads * hd;
  const int64_t S = seq / 2, T = 2 * split.ranks() * S;
  Buffer<float> k_all(batch * T * kvw), v_all(batch * T * kvw);
  gather_sequence(split, act.k.data(), k_all.data(), batch, seq, kvw);  // re-gathered: not kept from forward
  gather_sequence(split, act.v.data(), v_all.data(), batch, seq, kvw);
  Buffer<float> dk_all(batch * T * kvw, 0.0f), dv_all(batch * T * kvw, 0.0f), dk_part(batch * T * kvw),
      dv_part(batch * T * kvw);
  Buffer<float> q_half(batch * S * qw), out_half(batch * S * qw), dout_half(batch * S * qw), dq_half(batch * S * qw);
  for (int half = 0; half < 2; ++half) {
    copy_half_out(act.q.data(), q_half.data(), half, batch, seq, qw);
    copy_half_out(act.attn.data(), out_half.data(), half, batch, seq, qw);
    copy_half_out(dattn, dout_half.data(), half, batch, seq, qw);
    ops::attention_backward(half_shape(cfg, split, half, batch, seq), q_half.data(), k_all.data(), v_all.data(),
                            out_half.data(), act.lse.data() + half * batch * cfg.n_heads * S, dout_half.data(),
                            dq_half.data(), dk_part.data(), dv_part.data());
    for (int64_t i = 0; i < batch * T * kvw; ++i) {
      dk_all[i] += dk_part[i];
      dv_all[i] += dv_part[i];
    }
    copy_half_in(dq_half.data(), dq, half, batch, seq, qw);
  }
  reduce_scatter_sequence(split, dk_all.data(), dk, batch, seq, kvw);
  reduce_scatter_sequence(split, dv_all.data(), dv, batch, seq, kvw);
}
}  // namespace

void attention_block_forward(const ModelConfig& cfg, const ops::RopeTable<float>& rope, const AttentionWeights& w,
                             const float* x, float* x_out, int64_t batch, int64_t seq, AttentionActivations& act,
                             const ContextSplit& split) {
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
  const bool invariant = cfg.invariant_forward();
  ops::linear_forward_select(invariant, act.normed.data(), w.q, act.q.data(), n, d, q_width);
  ops::linear_forward_select(invariant, act.normed.data(), w.k, act.k.data(), n, d, kv_width);
  ops::linear_forward_select(invariant, act.normed.data(), w.v, act.v.data(), n, d, kv_width);
  const std::vector<int64_t> positions = local_positions(split, seq);
  ops::rope_apply_at(rope, act.q.data(), batch, seq, cfg.n_heads, positions.data());
  ops::rope_apply_at(rope, act.k.data(), batch, seq, cfg.n_kv_heads, positions.data());
  if (split.active())
    context_parallel_forward(cfg, split, batch, seq, act);
  else
    ops::attention_forward(attention_shape(cfg, batch, seq), act.q.data(), act.k.data(), act.v.data(),
                           act.attn.data(), act.lse.data());
  attention_output_residual(invariant, act.attn.data(), w.o, x, x_out, n, d, q_width);
}

void attention_output_residual(bool invariant, const float* attn, const float* o_weight, const float* x,
                               float* x_out, int64_t n, int64_t d, int64_t q_width) {
  if (!invariant) {
    // x_out = x + attn Wo^T: copy the residual, then let the GEMM accumulate into it (beta = 1).
    std::copy(x, x + n * d, x_out);
    ops::gemm<float>(false, true, n, d, q_width, 1.0f, attn, q_width, o_weight, q_width, 1.0f, x_out, d);
    return;
  }
  // Invariant: the projection alone, then one rounding per element for the residual add, so a row's
  // bits do not depend on how the GEMM would fold beta * C into its own reduction.
  ops::linear_forward_invariant(attn, o_weight, x_out, n, q_width, d);
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n * d; ++i) x_out[i] = x[i] + x_out[i];
}

void attention_block_backward(const ModelConfig& cfg, const ops::RopeTable<float>& rope, const AttentionWeights& w,
                              const AttentionGrads& g, const float* x, const float* dx_out, float* dx, int64_t batch,
                              int64_t seq, AttentionActivations& act, const ContextSplit& split) {
  const int64_t n = batch * seq, d = cfg.d_model, hd = cfg.resolved_head_dim();
  const int64_t q_width = cfg.n_heads * hd, kv_width = cfg.n_kv_heads * hd;

  Buffer<float> dattn(n * q_width), dq(n * q_width), dk(n * kv_width), dv(n * kv_width);
  ops::linear_backward(act.attn.data(), w.o, dx_out, dattn.data(), g.o, n, q_width, d);
  if (split.active())
    context_parallel_backward(cfg, split, batch, seq, act, dattn.data(), dq.data(), dk.data(), dv.data());
  else
    ops::attention_backward(attention_shape(cfg, batch, seq), act.q.data(), act.k.data(), act.v.data(),
                            act.attn.data(), act.lse.data(), dattn.data(), dq.data(), dk.data(), dv.data());
  // RoPE is a rotation: its backward rotates the gradient back.
  const std::vector<int64_t> positions = local_positions(split, seq);
  ops::rope_apply_at(rope, dq.data(), batch, seq, cfg.n_heads, positions.data(), /*inverse=*/true);
  ops::rope_apply_at(rope, dk.data(), batch, seq, cfg.n_kv_heads, positions.data(), /*inverse=*/true);

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
