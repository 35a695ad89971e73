#include "model/transformer.h"

#include <algorithm>
#include <string>

#include "core/error.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/gemm.h"
#include "ops/rmsnorm.h"

namespace flywheel {
namespace {
// LM-head chunk: rows * vocab floats of logits live at once (16 Mi floats = 64 MiB).
constexpr int64_t kHeadChunkFloats = int64_t{1} << 24;

int64_t head_chunk_rows(int64_t n, int64_t vocab) { return std::clamp<int64_t>(kHeadChunkFloats / vocab, 1, n); }

void add_in_place(float* dst, const float* src, int64_t count) {
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < count; ++i) dst[i] += src[i];
}
}  // namespace

Transformer::Transformer(const ModelConfig& config)
    : config_(config), rope_(config.resolved_head_dim(), config.max_seq_len, config.rope_theta) {
  config_.validate();
  register_parameters();
  params_.allocate();
  layer_act_.resize(config_.n_layers);
}

void Transformer::register_parameters() {
  const ModelConfig& c = config_;
  const int64_t d = c.d_model, hd = c.resolved_head_dim();
  embed_id_ = params_.add("model.embed_tokens.weight", {c.vocab_size, d}, ParamInit::kNormal);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerIds ids{};
    ids.input_norm = params_.add(p + "input_layernorm.weight", {d}, ParamInit::kOnes);
    ids.q = params_.add(p + "self_attn.q_proj.weight", {c.n_heads * hd, d}, ParamInit::kNormal);
    ids.k = params_.add(p + "self_attn.k_proj.weight", {c.n_kv_heads * hd, d}, ParamInit::kNormal);
    ids.v = params_.add(p + "self_attn.v_proj.weight", {c.n_kv_heads * hd, d}, ParamInit::kNormal);
    ids.o = params_.add(p + "self_attn.o_proj.weight", {d, c.n_heads * hd}, ParamInit::kNormalScaled);
    ids.post_norm = params_.add(p + "post_attention_layernorm.weight", {d}, ParamInit::kOnes);
    auto add_swiglu = [&](const std::string& prefix, int64_t hidden, int& gate, int& up, int& down) {
      gate = params_.add(prefix + "gate_proj.weight", {hidden, d}, ParamInit::kNormal);
      up = params_.add(prefix + "up_proj.weight", {hidden, d}, ParamInit::kNormal);
      down = params_.add(prefix + "down_proj.weight", {d, hidden}, ParamInit::kNormalScaled);
    };
    if (!c.is_moe()) {
      add_swiglu(p + "mlp.", c.d_ff, ids.gate, ids.up, ids.down);
    } else {
      ids.router = params_.add(p + "mlp.gate.weight", {c.moe_experts, d}, ParamInit::kNormal);
      ids.expert_gate.resize(c.moe_experts);
      ids.expert_up.resize(c.moe_experts);
      ids.expert_down.resize(c.moe_experts);
      for (int64_t e = 0; e < c.moe_experts; ++e)
        add_swiglu(p + "mlp.experts." + std::to_string(e) + ".", c.resolved_moe_d_ff(), ids.expert_gate[e],
                   ids.expert_up[e], ids.expert_down[e]);
      if (c.moe_shared_expert)
        add_swiglu(p + "mlp.shared_expert.", c.resolved_moe_d_ff(), ids.shared_gate, ids.shared_up, ids.shared_down);
    }
    layer_ids_.push_back(std::move(ids));
  }
  final_norm_id_ = params_.add("model.norm.weight", {d}, ParamInit::kOnes);
  if (!c.tie_embeddings) lm_head_id_ = params_.add("lm_head.weight", {c.vocab_size, d}, ParamInit::kNormal);
}

AttentionWeights Transformer::attention_weights(int l) const {
  const LayerIds& i = layer_ids_[l];
  return {params_.value(i.input_norm), params_.value(i.q), params_.value(i.k), params_.value(i.v),
          params_.value(i.o)};
}
AttentionGrads Transformer::attention_grads(int l) {
  const LayerIds& i = layer_ids_[l];
  return {params_.grad(i.input_norm), params_.grad(i.q), params_.grad(i.k), params_.grad(i.v), params_.grad(i.o)};
}
SwiGluWeights Transformer::swiglu_weights(int gate, int up, int down) const {
  return {params_.value(gate), params_.value(up), params_.value(down)};
}
SwiGluGrads Transformer::swiglu_grads(int gate, int up, int down) {
  return {params_.grad(gate), params_.grad(up), params_.grad(down)};
}
MoeWeights Transformer::moe_weights(int l) const {
  const LayerIds& i = layer_ids_[l];
  MoeWeights w{params_.value(i.router), {}, {}};
  for (size_t e = 0; e < i.expert_gate.size(); ++e)
    w.experts.push_back(swiglu_weights(i.expert_gate[e], i.expert_up[e], i.expert_down[e]));
  if (config_.moe_shared_expert) w.shared = swiglu_weights(i.shared_gate, i.shared_up, i.shared_down);
  return w;
}
MoeGrads Transformer::moe_grads(int l) {
  const LayerIds& i = layer_ids_[l];
  MoeGrads g{params_.grad(i.router), {}, {}};
  for (size_t e = 0; e < i.expert_gate.size(); ++e)
    g.experts.push_back(swiglu_grads(i.expert_gate[e], i.expert_up[e], i.expert_down[e]));
  if (config_.moe_shared_expert) g.shared = swiglu_grads(i.shared_gate, i.shared_up, i.shared_down);
  return g;
}
const float* Transformer::lm_head() const { return params_.value(lm_head_id_ >= 0 ? lm_head_id_ : embed_id_); }
float* Transformer::lm_head_grad() { return params_.grad(lm_head_id_ >= 0 ? lm_head_id_ : embed_id_); }

void Transformer::ffn_forward(int l, int64_t n) {
  const int64_t d = config_.d_model;
  LayerActivations& a = layer_act_[l];
  const LayerIds& ids = layer_ids_[l];
  a.ffn_normed.resize(n * d);
  a.ffn_rstd.resize(n);
  ops::rmsnorm_forward(a.x_mid.data(), params_.value(ids.post_norm), a.ffn_normed.data(), a.ffn_rstd.data(), n, d,
                       config_.norm_eps);
  Buffer<float> y(n * d);
  if (config_.is_moe())
    moe_block_forward(config_, moe_weights(l), a.ffn_normed.data(), y.data(), n, a.moe);
  else
    swiglu_ffn_forward(swiglu_weights(ids.gate, ids.up, ids.down), a.ffn_normed.data(), y.data(), n, d,
                       config_.d_ff, a.dense);
  float* x_out = (l + 1 < config_.n_layers) ? layer_act_[l + 1].x_in.data() : final_in_.data();
  const float* x_mid = a.x_mid.data();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n * d; ++i) x_out[i] = x_mid[i] + y[i];
}

void Transformer::forward_trunk(const int32_t* tokens, int64_t rows, int64_t seq) {
  FW_CHECK(seq <= config_.max_seq_len, "sequence length ", seq, " exceeds model.max_seq_len = ",
           config_.max_seq_len);
  const int64_t n = rows * seq, d = config_.d_model;
  for (LayerActivations& a : layer_act_) {
    a.x_in.resize(n * d);
    a.x_mid.resize(n * d);
  }
  final_in_.resize(n * d);
  final_normed_.resize(n * d);
  final_rstd_.resize(n);
  ops::embedding_forward(params_.value(embed_id_), tokens, layer_act_[0].x_in.data(), n, d, config_.vocab_size);
  for (int l = 0; l < config_.n_layers; ++l) {
    LayerActivations& a = layer_act_[l];
    attention_block_forward(config_, rope_, attention_weights(l), a.x_in.data(), a.x_mid.data(), rows, seq,
                            a.attention);
    ffn_forward(l, n);
  }
  ops::rmsnorm_forward(final_in_.data(), params_.value(final_norm_id_), final_normed_.data(), final_rstd_.data(), n,
                       d, config_.norm_eps);
}

void Transformer::forward_logits(const int32_t* tokens, int64_t rows, int64_t seq, float* logits) {
  forward_trunk(tokens, rows, seq);
  ops::linear_forward(final_normed_.data(), lm_head(), logits, rows * seq, config_.d_model, config_.vocab_size);
}

void Transformer::ffn_backward(int l, const float* dx_out, float* dx_mid, int64_t n, double aux_weight) {
  const int64_t d = config_.d_model;
  LayerActivations& a = layer_act_[l];
  const LayerIds& ids = layer_ids_[l];
  Buffer<float> dnormed(n * d);
  if (config_.is_moe())
    moe_block_backward(config_, moe_weights(l), moe_grads(l), a.ffn_normed.data(), dx_out, dnormed.data(), n,
                       aux_weight, a.moe);
  else
    swiglu_ffn_backward(swiglu_weights(ids.gate, ids.up, ids.down), swiglu_grads(ids.gate, ids.up, ids.down),
                        a.ffn_normed.data(), dx_out, dnormed.data(), n, d, config_.d_ff, a.dense, false);
  ops::rmsnorm_backward(a.x_mid.data(), params_.value(ids.post_norm), a.ffn_rstd.data(), dnormed.data(), dx_mid,
                        params_.grad(ids.post_norm), n, d);
  add_in_place(dx_mid, dx_out, n * d);
}

MicroBatchResult Transformer::forward_backward(const int32_t* tokens, const int32_t* targets,
                                               const float* ce_weight, int64_t rows, int64_t seq, double aux_scale,
                                               float* token_logprob) {
  const int64_t n = rows * seq, d = config_.d_model, vocab = config_.vocab_size;
  forward_trunk(tokens, rows, seq);
  MicroBatchResult result;

  // LM head + cross-entropy, chunk by chunk; dfinal = d loss / d final_normed.
  Buffer<float> dfinal(n * d);
  const int64_t chunk = head_chunk_rows(n, vocab);
  Buffer<float> logits(chunk * vocab);
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t m = std::min(chunk, n - r0);
    const float* h = final_normed_.data() + r0 * d;
    ops::linear_forward(h, lm_head(), logits.data(), m, d, vocab);
    result.ce_loss += ops::cross_entropy(logits.data(), targets + r0, ce_weight + r0, m, vocab, true,
                                         token_logprob ? token_logprob + r0 : nullptr);
    ops::linear_backward(h, lm_head(), logits.data(), dfinal.data() + r0 * d, lm_head_grad(), m, d, vocab);
  }

  Buffer<float> dx(n * d), dmid(n * d);
  ops::rmsnorm_backward(final_in_.data(), params_.value(final_norm_id_), final_rstd_.data(), dfinal.data(),
                        dx.data(), params_.grad(final_norm_id_), n, d);
  const double aux_weight = aux_scale / static_cast<double>(config_.n_layers);
  for (int l = config_.n_layers - 1; l >= 0; --l) {
    ffn_backward(l, dx.data(), dmid.data(), n, aux_weight);
    attention_block_backward(config_, rope_, attention_weights(l), attention_grads(l), layer_act_[l].x_in.data(),
                             dmid.data(), dx.data(), rows, seq, layer_act_[l].attention);
    if (config_.is_moe()) result.aux_loss += layer_act_[l].moe.aux / static_cast<double>(config_.n_layers);
  }
  ops::embedding_backward(tokens, dx.data(), params_.grad(embed_id_), n, d);
  return result;
}

}  // namespace flywheel
