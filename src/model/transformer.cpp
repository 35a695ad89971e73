#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "core/error.h"

namespace flywheel {
Transformer::Transformer(const ModelConfig& config, bool allocate_full, StageRange stage)
    : config_(config),
      stage_(stage),
      rope_(config.resolved_head_dim(), config.max_seq_len, config.rope_theta, config.rope_scaling_params()) {
  config_.validate();
  if (stage_.end_layer < 0) stage_.end_layer = static_cast<int>(config_.n_layers);
  FW_CHECK(0 <= stage_.first_layer && stage_.first_layer < stage_.end_layer && stage_.end_layer <= config_.n_layers,
           "stage layers [", stage_.first_layer, ", ", stage_.end_layer, ") are not a range of the model's ",
           config_.n_layers, " layers");
  register_parameters();
  if (allocate_full) params_.allocate();
  scoring_stash_.keep_for_backward = false;
}

Transformer::Transformer(const ModelConfig& config, WeightsOnly weights) : Transformer(config, false) {
  params_.allocate(weights.dtype, /*with_grads=*/false);
}

void Transformer::register_parameters() {
  const ModelConfig& c = config_;
  const int64_t d = c.d_model;
  const bool base_trainable = !c.lora.enabled();  // LoRA freezes every base weight
  embed_unit_ = params_.begin_unit("embed", -1, false, base_trainable);
  embed_id_ = params_.add("model.embed_tokens.weight", {c.vocab_size, d}, ParamInit::kNormal);
  auto add_swiglu = [&](const std::string& prefix, int64_t hidden, int& gate, int& up, int& down, int expert = -1) {
    gate = params_.add(prefix + "gate_proj.weight", {hidden, d}, ParamInit::kNormal, expert);
    up = params_.add(prefix + "up_proj.weight", {hidden, d}, ParamInit::kNormal, expert);
    down = params_.add(prefix + "down_proj.weight", {d, hidden}, ParamInit::kNormalScaled, expert);
  };
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerIds ids{};
    ids.unit = params_.begin_unit("layers." + std::to_string(l), l, false, base_trainable);
    ids.input_norm = params_.add(p + "input_layernorm.weight", {d}, ParamInit::kOnes);
    register_attention(p + "self_attn.", ids);
    ids.post_norm = params_.add(p + "post_attention_layernorm.weight", {d}, ParamInit::kOnes);
    if (!c.is_moe_layer(l)) {
      add_swiglu(p + "mlp.", c.d_ff, ids.gate, ids.up, ids.down);
    } else {
      ids.router = params_.add(p + "mlp.gate.weight", {c.moe_experts, d}, ParamInit::kNormal);
      if (c.moe_shared_expert)
        add_swiglu(p + "mlp.shared_expert.", c.resolved_moe_d_ff(), ids.shared_gate, ids.shared_up, ids.shared_down);
      // Experts form their own unit: they are sharded over the expert-parallel layout, not fsdp x cp.
      ids.expert_unit = params_.begin_unit("layers." + std::to_string(l) + ".experts", l, true, base_trainable);
      ids.expert_gate.resize(c.moe_experts);
      ids.expert_up.resize(c.moe_experts);
      ids.expert_down.resize(c.moe_experts);
      for (int64_t e = 0; e < c.moe_experts; ++e)
        add_swiglu(p + "mlp.experts." + std::to_string(e) + ".", c.resolved_moe_d_ff(), ids.expert_gate[e],
                   ids.expert_up[e], ids.expert_down[e], static_cast<int>(e));
    }
    if (c.lora.enabled()) register_adapters(l, ids);
    layer_ids_.push_back(std::move(ids));
  }
  head_unit_ = params_.begin_unit("head", -1, false, base_trainable);
  final_norm_id_ = params_.add("model.norm.weight", {d}, ParamInit::kOnes);
  if (!c.tie_embeddings) lm_head_id_ = params_.add("lm_head.weight", {c.vocab_size, d}, ParamInit::kNormal);
}

// Hugging Face names: self_attn.{q,k,v,o}_proj.{weight,bias}, self_attn.{q,k}_norm.weight (Qwen3).
void Transformer::register_attention(const std::string& p, LayerIds& ids) {
  const ModelConfig& c = config_;
  const int64_t d = c.d_model, hd = c.resolved_head_dim(), q_width = c.n_heads * hd, kv_width = c.n_kv_heads * hd;
  ids.q = params_.add(p + "q_proj.weight", {q_width, d}, ParamInit::kNormal);
  if (c.attention_bias) ids.q_bias = params_.add(p + "q_proj.bias", {q_width}, ParamInit::kZeros);
  ids.k = params_.add(p + "k_proj.weight", {kv_width, d}, ParamInit::kNormal);
  if (c.attention_bias) ids.k_bias = params_.add(p + "k_proj.bias", {kv_width}, ParamInit::kZeros);
  ids.v = params_.add(p + "v_proj.weight", {kv_width, d}, ParamInit::kNormal);
  if (c.attention_bias) ids.v_bias = params_.add(p + "v_proj.bias", {kv_width}, ParamInit::kZeros);
  ids.o = params_.add(p + "o_proj.weight", {d, q_width}, ParamInit::kNormalScaled);
  if (c.attention_bias) ids.o_bias = params_.add(p + "o_proj.bias", {d}, ParamInit::kZeros);
  if (c.qk_norm) {
    ids.q_norm = params_.add(p + "q_norm.weight", {hd}, ParamInit::kOnes);
    ids.k_norm = params_.add(p + "k_norm.weight", {hd}, ParamInit::kOnes);
  }
}

// PEFT's layout: <module>.lora_A.weight [rank, in] (U(+-1/sqrt(in))), <module>.lora_B.weight [out, rank] (zero).
void Transformer::add_adapter(int base_id) {
  const ParamInfo base = params_.info(base_id);
  const std::string module = base.name.substr(0, base.name.size() - std::string(".weight").size());
  const int64_t r = config_.lora.rank, out = base.shape[0], in = base.shape[1];
  AdapterIds ids;
  ids.a = params_.add(module + ".lora_A.weight", {r, in}, ParamInit::kFanInUniform, base.expert, true);
  ids.b = params_.add(module + ".lora_B.weight", {out, r}, ParamInit::kZeros, base.expert, true);
  adapter_of_.resize(params_.list().size());
  adapter_of_[base_id] = ids;
}

void Transformer::register_adapters(int l, LayerIds& ids) {
  const LoraConfig& lora = config_.lora;
  const std::string name = "layers." + std::to_string(l);
  auto swiglu = [&](int gate, int up, int down, LoraTarget gate_kind, LoraTarget up_kind, LoraTarget down_kind) {
    if (lora.targets_kind(gate_kind)) add_adapter(gate);
    if (lora.targets_kind(up_kind)) add_adapter(up);
    if (lora.targets_kind(down_kind)) add_adapter(down);
  };
  const bool moe = config_.is_moe_layer(l), has_mlp = !moe || config_.moe_shared_expert;
  const bool dense_targets =
      lora.targets_kind(kLoraQ) || lora.targets_kind(kLoraK) || lora.targets_kind(kLoraV) ||
      lora.targets_kind(kLoraO) ||
      (has_mlp && (lora.targets_kind(kLoraGate) || lora.targets_kind(kLoraUp) || lora.targets_kind(kLoraDown)));
  if (dense_targets) {  // no empty unit (targets = experts only)
    ids.lora_unit = params_.begin_unit(name + ".lora", l, false);
    for (const auto& [id, kind] : {std::pair{ids.q, kLoraQ}, {ids.k, kLoraK}, {ids.v, kLoraV}, {ids.o, kLoraO}})
      if (lora.targets_kind(kind)) add_adapter(id);
    if (!moe) swiglu(ids.gate, ids.up, ids.down, kLoraGate, kLoraUp, kLoraDown);
    if (moe && config_.moe_shared_expert)
      swiglu(ids.shared_gate, ids.shared_up, ids.shared_down, kLoraGate, kLoraUp, kLoraDown);
  }
  if (!moe || !lora.targets_kind(kLoraExperts)) return;
  ids.expert_lora_unit = params_.begin_unit(name + ".experts.lora", l, true);
  for (size_t e = 0; e < ids.expert_gate.size(); ++e)
    swiglu(ids.expert_gate[e], ids.expert_up[e], ids.expert_down[e], kLoraExperts, kLoraExperts, kLoraExperts);
}

LoraAdapters Transformer::adapter(int base_id) const {
  if (!adapters_enabled_) return {};
  if (row_adapters_) {
    LoraAdapters out;
    for (const RowAdapterGroup& g : *row_adapters_) {
      const auto it = g.adapter->by_base.find(base_id);
      if (it != g.adapter->by_base.end())
        out.push_back({it->second.first, it->second.second, g.adapter->scale, &g.rows});
    }
    return out;
  }
  if (base_id >= static_cast<int>(adapter_of_.size()) || adapter_of_[base_id].a < 0) return {};
  const AdapterIds& ids = adapter_of_[base_id];
  return {{weight(ids.a), weight(ids.b), config_.lora.scale()}};
}

LoraGrads Transformer::adapter_grads(int base_id) {
  if (base_id >= static_cast<int>(adapter_of_.size()) || adapter_of_[base_id].a < 0) return {};
  return {params_.grad(adapter_of_[base_id].a), params_.grad(adapter_of_[base_id].b)};
}

void Transformer::use_units(int unit, int lora_unit, bool backward) {
  hooks_->before_use(unit, backward);
  if (lora_unit >= 0) hooks_->before_use(lora_unit, backward);
}

void Transformer::end_units(int unit, int lora_unit, bool backward) {
  for (int u : {lora_unit, unit}) {
    if (u < 0) continue;
    if (backward)
      hooks_->after_backward(u);
    else
      hooks_->after_forward(u);
  }
}

std::vector<int> Transformer::stage_units() const {
  std::vector<int> units;
  if (stage_.has_embedding()) units.push_back(embed_unit_);
  for (int l = stage_.first_layer; l < stage_.end_layer; ++l) {
    // In registration (= flat) order: a single rank's shards then lie exactly as the flat layout.
    for (int unit :
         {layer_ids_[l].unit, layer_ids_[l].expert_unit, layer_ids_[l].lora_unit, layer_ids_[l].expert_lora_unit})
      if (unit >= 0) units.push_back(unit);
  }
  if (stage_.has_head(config_.n_layers)) {
    if (config_.tie_embeddings && !stage_.has_embedding()) units.push_back(embed_unit_);
    units.push_back(head_unit_);
  }
  return units;
}

Tensor Transformer::weight(int id) const { return params_.tensor(id); }

AttentionWeights Transformer::attention_weights(int l) const {
  const LayerIds& i = layer_ids_[l];
  return {weight(i.input_norm),
          weight(i.q),
          weight(i.k),
          weight(i.v),
          weight(i.o),
          optional_weight(i.q_norm),
          optional_weight(i.k_norm),
          optional_weight(i.q_bias),
          optional_weight(i.k_bias),
          optional_weight(i.v_bias),
          optional_weight(i.o_bias),
          adapter(i.q),
          adapter(i.k),
          adapter(i.v),
          adapter(i.o)};
}
AttentionGrads Transformer::attention_grads(int l) {
  const LayerIds& i = layer_ids_[l];
  return {params_.grad(i.input_norm), params_.grad(i.q),       params_.grad(i.k),       params_.grad(i.v),
          params_.grad(i.o),          optional_grad(i.q_norm), optional_grad(i.k_norm), optional_grad(i.q_bias),
          optional_grad(i.k_bias),    optional_grad(i.v_bias), optional_grad(i.o_bias), adapter_grads(i.q),
          adapter_grads(i.k),         adapter_grads(i.v),      adapter_grads(i.o)};
}
SwiGluWeights Transformer::swiglu_weights(int gate, int up, int down) const {
  return {weight(gate), weight(up), weight(down), adapter(gate), adapter(up), adapter(down)};
}
SwiGluWeights Transformer::dense_ffn_weights(int l) const {
  const LayerIds& i = layer_ids_[l];
  return swiglu_weights(i.gate, i.up, i.down);
}
SwiGluGrads Transformer::swiglu_grads(int gate, int up, int down) {
  return {params_.grad(gate),  params_.grad(up),  params_.grad(down),
          adapter_grads(gate), adapter_grads(up), adapter_grads(down)};
}
MoeWeights Transformer::moe_weights(int l) const {
  const LayerIds& i = layer_ids_[l];
  MoeWeights w{weight(i.router), {}, {}};
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
Tensor Transformer::lm_head() const { return weight(lm_head_id_ >= 0 ? lm_head_id_ : embed_id_); }
float* Transformer::lm_head_grad() { return params_.grad(lm_head_id_ >= 0 ? lm_head_id_ : embed_id_); }
int Transformer::lm_head_unit() const { return lm_head_id_ >= 0 ? head_unit_ : embed_unit_; }

// The one layer forward every path runs (training, logprob passes, KV-cache decoding).
void Transformer::layer_forward(int l, ActivationStash::Layer& a, const float* x_in, float* x_out, int64_t rows,
                                int64_t seq, AttentionContext& attention, bool keep_input) {
  const int64_t n = rows * seq, d = config_.d_model;
  const LayerIds& ids = layer_ids_[l];
  Backend& be = *backend_;
  use_units(ids.unit, ids.lora_unit, false);
  if (keep_input) {
    a.x_in.assign(x_in, x_in + n * d);
    x_in = a.x_in.data();
  }
  a.x_mid.resize(n * d);
  attention_block_forward(be, config_, rope_, attention_weights(l), attention, l, x_in, a.x_mid.data(), rows, seq,
                          a.attention);
  a.ffn_normed.resize(n * d);
  a.ffn_rstd.resize(n);
  be.rmsnorm(a.x_mid.data(), weight(ids.post_norm), a.ffn_normed.data(), a.ffn_rstd.data(), n, d, config_.norm_eps);
  Buffer<float> y(n * d);
  if (config_.is_moe_layer(l)) {
    use_units(ids.expert_unit, ids.expert_lora_unit, false);
    moe_block_forward(be, config_, moe_weights(l), a.ffn_normed.data(), y.data(), n, a.moe, experts_);
    end_units(ids.expert_unit, ids.expert_lora_unit, false);
  } else {
    swiglu_ffn_forward(be, config_.forward_kernel(), swiglu_weights(ids.gate, ids.up, ids.down), a.ffn_normed.data(),
                       y.data(), n, d, config_.d_ff, a.dense);
  }
  end_units(ids.unit, ids.lora_unit, false);
  be.add(a.x_mid.data(), y.data(), x_out, n * d);
}

void Transformer::layer_backward(int l, ActivationStash::Layer& a, const float* dx_out, float* dx_in, int64_t rows,
                                 int64_t seq, double aux_weight) {
  const int64_t n = rows * seq, d = config_.d_model;
  const LayerIds& ids = layer_ids_[l];
  Backend& be = *backend_;
  use_units(ids.unit, ids.lora_unit, true);
  Buffer<float> dnormed(n * d), dmid(n * d);
  if (config_.is_moe_layer(l)) {
    use_units(ids.expert_unit, ids.expert_lora_unit, true);
    moe_block_backward(be, config_, moe_weights(l), moe_grads(l), a.ffn_normed.data(), dx_out, dnormed.data(), n,
                       aux_weight, a.moe);
    end_units(ids.expert_unit, ids.expert_lora_unit, true);
  } else {
    swiglu_ffn_backward(be, config_.forward_kernel(), swiglu_weights(ids.gate, ids.up, ids.down),
                        swiglu_grads(ids.gate, ids.up, ids.down), a.ffn_normed.data(), dx_out, dnormed.data(), n, d,
                        config_.d_ff, a.dense, false);
  }
  be.rmsnorm_backward(a.x_mid.data(), params_.value(ids.post_norm), a.ffn_rstd.data(), dnormed.data(), dmid.data(),
                      params_.grad(ids.post_norm), n, d);
  be.add_in_place(dmid.data(), dx_out, n * d);
  attention_block_backward(be, config_, rope_, attention_weights(l), attention_grads(l), *attention_, l,
                           a.x_in.data(), dmid.data(), dx_in, rows, seq, a.attention);
  end_units(ids.unit, ids.lora_unit, true);
}

void Transformer::stage_forward(ActivationStash& stash, const int32_t* tokens, const float* hidden_in, int64_t rows,
                                int64_t seq) {
  forward_stage(stash, tokens, hidden_in, rows, seq, *attention_);
}

void Transformer::forward_with(ActivationStash& stash, const int32_t* tokens, int64_t rows, int64_t seq,
                               AttentionContext& attention) {
  FW_CHECK(stage_.has_embedding() && stage_.has_head(config_.n_layers),
           "forward_with runs the whole model; this Transformer holds only a pipeline stage");
  FW_CHECK(!stash.keep_for_backward, "forward_with keeps no activations: pass a forward-only stash");
  forward_stage(stash, tokens, nullptr, rows, seq, attention);
}

void Transformer::forward_stage(ActivationStash& stash, const int32_t* tokens, const float* hidden_in, int64_t rows,
                                int64_t seq, AttentionContext& attention) {
  FW_CHECK(seq <= config_.max_seq_len, "sequence length ", seq, " exceeds model.max_seq_len = ",
           config_.max_seq_len);
  const int64_t n = rows * seq, d = config_.d_model;
  const bool keep = stash.keep_for_backward;
  stash.rows = rows;
  stash.seq = seq;
  stash.layers.resize(keep ? stage_.end_layer - stage_.first_layer : 1);
  Buffer<float> x(n * d);
  if (stage_.has_embedding()) {
    if (keep) stash.tokens.assign(tokens, tokens + n);
    hooks_->before_use(embed_unit_, false);
    backend_->embedding(weight(embed_id_), tokens, x.data(), n, d, config_.vocab_size);
    hooks_->after_forward(embed_unit_);
  } else {
    std::copy(hidden_in, hidden_in + n * d, x.data());
  }
  stash.stage_out.resize(n * d);
  for (int l = stage_.first_layer; l < stage_.end_layer; ++l) {
    ActivationStash::Layer& act = stash.layers[keep ? l - stage_.first_layer : 0];
    layer_forward(l, act, x.data(), stash.stage_out.data(), rows, seq, attention, keep);
    std::swap(x, stash.stage_out);
  }
  std::swap(x, stash.stage_out);
  if (stage_.has_head(config_.n_layers)) head_forward(stash);
}

MicroBatchResult Transformer::stage_backward(ActivationStash& stash, const int32_t* targets, const float* ce_weight,
                                             const float* dstage_out, float* dhidden_in, double aux_scale,
                                             float* token_logprob) {
  const int64_t n = stash.rows * stash.seq, d = config_.d_model;
  MicroBatchResult result;
  Buffer<float> dx(n * d), dprev(n * d);
  if (stage_.has_head(config_.n_layers))
    result.ce_loss = head_backward(stash, targets, ce_weight, dx.data(), token_logprob);
  else
    std::copy(dstage_out, dstage_out + n * d, dx.data());
  // The aux loss is the mean over the MoE layers (all layers unless a layer pattern makes some dense).
  const double moe_layers = static_cast<double>(std::max<int64_t>(config_.moe_layer_count(), 1));
  const double aux_weight = aux_scale / moe_layers;
  for (int l = stage_.end_layer - 1; l >= stage_.first_layer; --l) {
    ActivationStash::Layer& a = stash.layers[l - stage_.first_layer];
    layer_backward(l, a, dx.data(), dprev.data(), stash.rows, stash.seq, aux_weight);
    std::swap(dx, dprev);
    if (config_.is_moe_layer(l)) result.aux_loss += a.moe.aux / moe_layers;
  }
  if (stage_.has_embedding()) {
    if (params_.trainable(embed_id_)) {  // a frozen embedding (LoRA) has nothing to learn from dx
      hooks_->before_use(embed_unit_, true);
      backend_->embedding_backward(stash.tokens.data(), dx.data(), params_.grad(embed_id_), n, d);
      hooks_->after_backward(embed_unit_);
    }
  } else {
    std::copy(dx.begin(), dx.end(), dhidden_in);
  }
  return result;
}

MicroBatchResult Transformer::forward_backward(const int32_t* tokens, const int32_t* targets,
                                               const float* ce_weight, int64_t rows, int64_t seq, double aux_scale,
                                               float* token_logprob) {
  FW_CHECK(stage_.has_embedding() && stage_.has_head(config_.n_layers),
           "forward_backward runs the whole model; this Transformer holds only a pipeline stage");
  stage_forward(stash_, tokens, nullptr, rows, seq);
  return stage_backward(stash_, targets, ce_weight, nullptr, nullptr, aux_scale, token_logprob);
}

void Transformer::forward_logits(const int32_t* tokens, int64_t rows, int64_t seq, float* logits) {
  FW_CHECK(stage_.has_embedding() && stage_.has_head(config_.n_layers),
           "forward_logits runs the whole model; this Transformer holds only a pipeline stage");
  stage_forward(scoring_stash_, tokens, nullptr, rows, seq);
  const int lm_unit = lm_head_unit();
  hooks_->before_use(lm_unit, false);
  head_logits(scoring_stash_.final_normed.data(), rows * seq, logits);
  hooks_->after_forward(lm_unit);
}

void Transformer::set_logit_scale(float s) {
  FW_CHECK(std::isfinite(s) && s > 0.0f, "logit scale ", s, " must be finite and > 0 (it is 1 / temperature)");
  logit_scale_ = s;
}

void Transformer::forward_logprobs(const int32_t* tokens, const int32_t* targets, int64_t rows, int64_t seq,
                                   float* token_logprob, const float* wanted) {
  FW_CHECK(stage_.has_embedding() && stage_.has_head(config_.n_layers),
           "forward_logprobs runs the whole model; this Transformer holds only a pipeline stage");
  stage_forward(scoring_stash_, tokens, nullptr, rows, seq);
  stage_logprobs(scoring_stash_, targets, token_logprob, wanted);
}

}  // namespace flywheel
