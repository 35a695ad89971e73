#include "model/attention_block.h"

#include <vector>

namespace flywheel {
namespace {

// One projection y[n, width] = h W^T (+ b), written to `raw` and head-normed into y under qk_norm
// (heads of width hd: RMSNorm over each head's hd values with the shared [hd] gain).
void project(Backend& backend, const ModelConfig& cfg, const float* h, const Tensor& weight, const LoraAdapters& lora,
             const Tensor& bias, const Tensor& head_norm, float* y, Buffer<float>& raw, Buffer<float>& rstd, int64_t n,
             int64_t width) {
  const int64_t d = cfg.d_model, hd = cfg.resolved_head_dim();
  float* out = y;
  if (cfg.qk_norm) {
    raw.resize(n * width);
    rstd.resize(n * width / hd);
    out = raw.data();
  }
  adapted_linear(backend, cfg.forward_kernel(), h, weight, lora, out, n, d, width);
  if (cfg.attention_bias) backend.add_bias(out, bias, n, width);
  if (cfg.qk_norm) backend.rmsnorm(raw.data(), head_norm, y, rstd.data(), n * width / hd, hd, cfg.norm_eps);
}

// The backward of project() as far as the projection's output: dy (the gradient of the head-normed
// output) becomes the gradient of the raw projection in `draw` (dy itself when there is no head norm),
// and the head norm's and the bias's gradients accumulate.
const float* project_output_backward(Backend& backend, const ModelConfig& cfg, const float* head_norm,
                                     const AttentionActivations& act, bool is_q, const float* dy, float* draw,
                                     float* dnorm, float* dbias, int64_t n, int64_t width) {
  const int64_t hd = cfg.resolved_head_dim();
  const float* dout = dy;
  if (cfg.qk_norm) {
    const Buffer<float>& raw = is_q ? act.q_raw : act.k_raw;
    const Buffer<float>& rstd = is_q ? act.q_rstd : act.k_rstd;
    backend.rmsnorm_backward(raw.data(), head_norm, rstd.data(), dy, draw, dnorm, n * width / hd, hd);
    dout = draw;
  }
  if (cfg.attention_bias && dbias) backend.bias_backward(dout, dbias, n, width);
  return dout;
}

}  // namespace

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
  project(backend, cfg, act.normed.data(), w.q, w.q_lora, w.q_bias, w.q_norm, act.q.data(), act.q_raw, act.q_rstd, n,
          q_width);
  project(backend, cfg, act.normed.data(), w.k, w.k_lora, w.k_bias, w.k_norm, act.k.data(), act.k_raw, act.k_rstd, n,
          kv_width);
  adapted_linear(backend, kernel, act.normed.data(), w.v, w.v_lora, act.v.data(), n, d, kv_width);
  if (cfg.attention_bias) backend.add_bias(act.v.data(), w.v_bias, n, kv_width);
  const std::vector<int64_t> positions = context.positions(batch, seq);
  backend.rope(rope, act.q.data(), n, cfg.n_heads, positions.data(), false);
  backend.rope(rope, act.k.data(), n, cfg.n_kv_heads, positions.data(), false);
  context.forward(backend, layer, heads, batch, seq, act.q.data(), act.k.data(), act.v.data(), act.attn.data(),
                  act.lse.data());
  adapted_linear_residual(backend, kernel, act.attn.data(), w.o, w.o_lora, x, x_out, n, q_width, d);
  if (cfg.attention_bias) backend.add_bias(x_out, w.o_bias, n, d);
}

void attention_block_backward(Backend& backend, const ModelConfig& cfg, const ops::RopeTable<float>& rope,
                              const AttentionWeights& w, const AttentionGrads& g, AttentionContext& context, int layer,
                              const float* x, const float* dx_out, float* dx, int64_t batch, int64_t seq,
                              AttentionActivations& act) {
  const AttentionHeads heads = attention_heads(cfg);
  const int64_t n = batch * seq, d = cfg.d_model, q_width = heads.q_width(), kv_width = heads.kv_width();

  const LinearKernel kernel = cfg.forward_kernel();
  Buffer<float> dattn(n * q_width), dq(n * q_width), dk(n * kv_width), dv(n * kv_width);
  adapted_linear_backward(backend, kernel, act.attn.data(), w.o, w.o_lora, g.o_lora, dx_out, dattn.data(), g.o, n,
                          q_width, d, false);
  if (cfg.attention_bias && g.o_bias) backend.bias_backward(dx_out, g.o_bias, n, d);
  context.backward(backend, layer, heads, batch, seq, act.q.data(), act.k.data(), act.v.data(), act.attn.data(),
                   act.lse.data(), dattn.data(), dq.data(), dk.data(), dv.data());
  // RoPE is a rotation: its backward rotates the gradient back.
  const std::vector<int64_t> positions = context.positions(batch, seq);
  backend.rope(rope, dq.data(), n, cfg.n_heads, positions.data(), true);
  backend.rope(rope, dk.data(), n, cfg.n_kv_heads, positions.data(), true);
  // rmsnorm_backward may not write its input gradient over dy: the raw gradients get their own buffers.
  Buffer<float> dq_raw(cfg.qk_norm ? n * q_width : 0), dk_raw(cfg.qk_norm ? n * kv_width : 0);
  const float* q_norm = cfg.qk_norm ? w.q_norm.data<float>() : nullptr;
  const float* k_norm = cfg.qk_norm ? w.k_norm.data<float>() : nullptr;
  const float* dq_proj = project_output_backward(backend, cfg, q_norm, act, true, dq.data(), dq_raw.data(), g.q_norm,
                                                 g.q_bias, n, q_width);
  const float* dk_proj = project_output_backward(backend, cfg, k_norm, act, false, dk.data(), dk_raw.data(),
                                                 g.k_norm, g.k_bias, n, kv_width);
  if (cfg.attention_bias && g.v_bias) backend.bias_backward(dv.data(), g.v_bias, n, kv_width);

  Buffer<float> dnormed(n * d);
  const float* h = act.normed.data();
  adapted_linear_backward(backend, kernel, h, w.q, w.q_lora, g.q_lora, dq_proj, dnormed.data(), g.q, n, d, q_width,
                          false);
  adapted_linear_backward(backend, kernel, h, w.k, w.k_lora, g.k_lora, dk_proj, dnormed.data(), g.k, n, d, kv_width,
                          true);
  adapted_linear_backward(backend, kernel, h, w.v, w.v_lora, g.v_lora, dv.data(), dnormed.data(), g.v, n, d, kv_width,
                          true);
  backend.rmsnorm_backward(x, w.norm.data<float>(), act.rstd.data(), dnormed.data(), dx, g.norm, n, d);
  // Residual: the stream's own gradient passes straight through.
  backend.add_in_place(dx, dx_out, n * d);
}

}  // namespace flywheel
