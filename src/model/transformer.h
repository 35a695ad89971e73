// The decoder-only transformer (dense or MoE), fp32: registry of named parameters, forward, and
// backward by hand (no autograd), with activations kept in a stash between the two.
//
//   x = embed[tokens]
//   per layer: x = x + Attn(RMSNorm(x));  x = x + FFN(RMSNorm(x))      (FFN dense SwiGLU or MoE)
//   logits = RMSNorm(x) W_lm^T              (W_lm = embed when tie_embeddings)
//   loss = sum_t ce_weight_t * CE(s * logits_t, target_t) + aux_scale * mean_layers(aux_layer)
// with s the logit scale (1 / sampling temperature; 1 by default, and then no multiply happens).
// ce_weight may have any sign (policy-gradient losses weight -log p by advantages).
//
// The LM head runs in chunks of rows fused with the cross-entropy: a chunk's logits become its
// dlogits in place, so the [tokens, vocab] matrix never exists whole during training.
//
// One forward path: training, the forward-only logprob passes and the KV-cache decoder
// (serve/cached_forward.h) all run layer_forward below; they differ only in the AttentionContext
// the layers attend through (attention_context.h) and in whether activations are kept.
//
// Parallelism is applied from outside, through three interfaces the model calls: UnitHooks around
// every use of a parameter unit (FSDP gathers weights just before use and reduce-scatters gradients
// just after), the AttentionContext (context parallelism), and the ExpertExchange (expert
// parallelism). For a pipeline the same code runs one stage (a range of layers, with the embedding
// on the first stage and the head on the last) and keeps one stash per micro-batch in flight.
// Every op goes through the Backend (backend/backend.h).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "model/attention_block.h"
#include "model/attention_context.h"
#include "model/config.h"
#include "model/expert_dispatch.h"
#include "model/ffn_block.h"
#include "model/moe_block.h"
#include "model/parameters.h"
#include "model/row_adapters.h"

namespace flywheel {

struct MicroBatchResult {
  double ce_loss = 0;   // sum_t ce_weight_t * CE_t   (already weighted)
  double aux_loss = 0;  // this stage's sum over its layers of aux_layer / n_layers (coefficient-free)
};

// Layers [first_layer, end_layer) of the model; the first stage embeds, the last runs the head.
struct StageRange {
  int first_layer = 0;
  int end_layer = 0;
  bool has_embedding() const { return first_layer == 0; }
  bool has_head(int64_t n_layers) const { return end_layer == n_layers; }
};

// Called around each use of a unit of parameters (see ParameterUnit). Default: do nothing.
class UnitHooks {
 public:
  virtual ~UnitHooks() = default;
  virtual void before_use(int unit, bool backward) {}  // about to read the unit's weights (and, in backward, write grads)
  virtual void after_forward(int unit) {}        // the forward is done with them
  virtual void after_backward(int unit) {}       // the unit's gradients for this micro-batch are complete
};

// Everything one micro-batch's backward needs from its forward on one stage. A forward-only stash
// (keep_for_backward = false: logprob passes, decoding) reuses one layer's activations for every
// layer and keeps no layer inputs, so it costs one layer, not all of them.
struct ActivationStash {
  bool keep_for_backward = true;
  struct Layer {
    Buffer<float> x_in;   // residual stream entering the layer [n, d]
    Buffer<float> x_mid;  // after the attention half [n, d]
    Buffer<float> ffn_normed, ffn_rstd;
    AttentionActivations attention;
    SwiGluActivations dense;
    MoeActivations moe;
  };
  std::vector<Layer> layers;  // this stage's layers
  Buffer<float> stage_out;    // residual stream leaving the stage's last layer [n, d]
  Buffer<float> final_normed, final_rstd;
  std::vector<int32_t> tokens;  // first stage: the input ids (for the embedding gradient)
  int64_t rows = 0, seq = 0;
};

class Transformer {
 public:
  // Registers every parameter of the model. allocate_full: single-rank storage for all of them
  // (otherwise the caller binds units, e.g. FSDP). stage: this rank's layers (default: all).
  explicit Transformer(const ModelConfig& config, bool allocate_full = true, StageRange stage = {0, -1});
  // A whole model that only runs forward (a serving replica, the publisher's copy of the weights):
  // weights in `weights` (f32, or bf16 in 2 bytes), no gradients.
  struct WeightsOnly {
    DType dtype = DType::kF32;
  };
  Transformer(const ModelConfig& config, WeightsOnly weights);

  const ModelConfig& config() const { return config_; }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }
  const StageRange& stage() const { return stage_; }
  void set_hooks(UnitHooks* hooks) { hooks_ = hooks ? hooks : &no_hooks_; }
  // How attention reaches its keys in training and logprob passes (null: each row's whole sequence
  // is here). Context parallelism installs its own.
  void set_attention(AttentionContext* attention) { attention_ = attention ? attention : &full_sequence_; }
  // Where MoE slots meet their experts (null: every expert is here). Expert parallelism installs one.
  void set_expert_exchange(ExpertExchange* exchange) { experts_ = exchange; }
  void set_backend(Backend& backend) { backend_ = &backend; }
  Backend& backend() const { return *backend_; }
  void initialize(uint64_t seed) { params_.initialize(seed, config_.init_std, config_.n_layers, config_.lora.seed); }
  // LoRA (config.lora): with adapters off the model computes its frozen base alone -- the reference policy of DPO
  // and of GRPO's KL penalty needs no copy of the weights. On by default; no effect without adapters.
  void set_adapters_enabled(bool enabled) { adapters_enabled_ = enabled; }
  bool adapters_enabled() const { return adapters_enabled_; }
  // Serving: adapters loaded beside the model, each on its rows of the next forwards (null: none). They replace
  // the model's own adapters while set; forward only (backward refuses them). The groups must outlive their use.
  void set_row_adapters(const std::vector<RowAdapterGroup>* groups) { row_adapters_ = groups; }

  // Units this stage uses, in forward order (the embedding unit also on the last stage when tied).
  std::vector<int> stage_units() const;

  // Whole model on one micro-batch of rows x seq tokens: forward, then backward; gradients
  // accumulate into the bound gradient storage. ce_weight[t] = loss_mask[t] / (loss tokens in the
  // global batch). token_logprob (optional, [rows * seq]) receives log p(target_t). Positions of
  // weight 0 skip the LM head (they add nothing to the loss or a gradient) unless token_logprob is asked for.
  MicroBatchResult forward_backward(const int32_t* tokens, const int32_t* targets, const float* ce_weight,
                                    int64_t rows, int64_t seq, double aux_scale, float* token_logprob = nullptr);

  // Forward only: logits[rows, seq, vocab] for every position (unscaled: the logit scale is not applied).
  void forward_logits(const int32_t* tokens, int64_t rows, int64_t seq, float* logits);

  // Logits are multiplied by s before the softmax in the loss, its gradient and the logprob passes
  // (s = 1 / temperature when scoring samples drawn at that temperature). s must be finite and > 0.
  void set_logit_scale(float s);
  float logit_scale() const { return logit_scale_; }

  // Forward only, whole model: token_logprob[rows * seq] = log softmax(s * logits_t)[targets_t], at
  // the positions with wanted[t] != 0 (0 elsewhere; every position when wanted is null). Bit-identical
  // to forward_backward's token_logprob (same head chunks, same cross-entropy code).
  void forward_logprobs(const int32_t* tokens, const int32_t* targets, int64_t rows, int64_t seq, float* token_logprob,
                        const float* wanted = nullptr);

  // Stage pieces. stage_forward: the first stage reads tokens, later ones hidden_in [n, d]; the
  // result stays in stash.stage_out (send it on; the last stage also runs the final norm). stage_backward: the last
  // stage starts from the loss (targets, ce_weight), earlier ones from dstage_out [n, d]; the
  // first stage ends in the embedding, later ones write dhidden_in [n, d] for the previous stage.
  void stage_forward(ActivationStash& stash, const int32_t* tokens, const float* hidden_in, int64_t rows,
                     int64_t seq);
  MicroBatchResult stage_backward(ActivationStash& stash, const int32_t* targets, const float* ce_weight,
                                  const float* dstage_out, float* dhidden_in, double aux_scale,
                                  float* token_logprob = nullptr);
  // Last stage, after stage_forward: the head's forward part only (no gradients), as head_backward.
  // Only the positions with wanted[t] != 0 run through the head (all when wanted is null); the others get 0.
  void stage_logprobs(ActivationStash& stash, const int32_t* targets, float* token_logprob,
                      const float* wanted = nullptr);

  // Forward only, whole model, attending through `attention` (a KV cache: the decoder): embedding,
  // every layer, final norm; stash.final_normed[rows * seq, d] is the LM head's input of every row.
  void forward_with(ActivationStash& stash, const int32_t* tokens, int64_t rows, int64_t seq,
                    AttentionContext& attention);
  // logits[m, vocab] = h[m, d] W_lm^T with the forward kernel, unscaled (the decoder's LM head).
  void head_logits(const float* h, int64_t m, float* logits);

 private:
  struct LayerIds {
    int unit, expert_unit = -1;
    int lora_unit = -1, expert_lora_unit = -1;  // config.lora: this layer's adapters (dense; experts)
    int input_norm, q, k, v, o, post_norm;
    int q_norm = -1, k_norm = -1;                              // qk_norm
    int q_bias = -1, k_bias = -1, v_bias = -1, o_bias = -1;    // attention_bias
    int gate, up, down;  // dense
    int router;
    std::vector<int> expert_gate, expert_up, expert_down;
    int shared_gate = -1, shared_up = -1, shared_down = -1;
  };

  // A base weight's LoRA matrices (ids; -1: none).
  struct AdapterIds {
    int a = -1, b = -1;
  };

  void register_parameters();
  void register_attention(const std::string& prefix, LayerIds& ids);
  // The adapters of layer l's targeted weights (config.lora), in new units after the layer's own.
  void register_adapters(int layer, LayerIds& ids);
  void add_adapter(int base_id);
  // Base weight id's adapter (inactive: none, or adapters switched off) and its gradients.
  LoraAdapters adapter(int base_id) const;
  LoraGrads adapter_grads(int base_id);
  // Hooks around a layer's units: its dense unit (+ adapters) or its expert unit (+ adapters).
  void use_units(int unit, int lora_unit, bool backward);
  void end_units(int unit, int lora_unit, bool backward);
  // The weight's view, or an undefined Tensor for an absent one (id -1); the gradient, or null.
  Tensor optional_weight(int id) const { return id >= 0 ? weight(id) : Tensor(); }
  float* optional_grad(int id) { return id >= 0 ? params_.grad(id) : nullptr; }
  // Views of the bound weights (valid while their unit is bound; always, for single-rank storage).
  Tensor weight(int id) const;
  AttentionWeights attention_weights(int layer) const;
  SwiGluWeights dense_ffn_weights(int layer) const;
  MoeWeights moe_weights(int layer) const;
  Tensor lm_head() const;
  AttentionGrads attention_grads(int layer);
  SwiGluWeights swiglu_weights(int gate, int up, int down) const;
  SwiGluGrads swiglu_grads(int gate, int up, int down);
  MoeGrads moe_grads(int layer);
  float* lm_head_grad();
  int lm_head_unit() const;

  void forward_stage(ActivationStash& stash, const int32_t* tokens, const float* hidden_in, int64_t rows, int64_t seq,
                     AttentionContext& attention);
  void layer_forward(int layer, ActivationStash::Layer& act, const float* x_in, float* x_out, int64_t rows,
                     int64_t seq, AttentionContext& attention, bool keep_input);
  void layer_backward(int layer, ActivationStash::Layer& act, const float* dx_out, float* dx_in, int64_t rows,
                      int64_t seq, double aux_weight);
  void head_forward(ActivationStash& stash);
  double head_backward(ActivationStash& stash, const int32_t* targets, const float* ce_weight, float* dx,
                       float* token_logprob);
  // logits[m, vocab] = s * (h W_lm^T) for the m rows of one head chunk (the forward part every head pass shares).
  void head_chunk_logits(const float* h, float* logits, int64_t m);

  ModelConfig config_;
  StageRange stage_;
  ParameterSet params_;
  ops::RopeTable<float> rope_;
  int embed_unit_ = -1, head_unit_ = -1;
  int embed_id_ = -1, final_norm_id_ = -1, lm_head_id_ = -1;
  std::vector<LayerIds> layer_ids_;
  std::vector<AdapterIds> adapter_of_;  // by base parameter id
  bool adapters_enabled_ = true;
  const std::vector<RowAdapterGroup>* row_adapters_ = nullptr;
  ActivationStash stash_;                // forward_backward
  ActivationStash scoring_stash_;  // forward_logits / forward_logprobs (forward only)
  UnitHooks no_hooks_;
  UnitHooks* hooks_ = &no_hooks_;
  FullSequenceAttention full_sequence_;
  AttentionContext* attention_ = &full_sequence_;
  ExpertExchange* experts_ = nullptr;
  Backend* backend_ = &cpu_backend();
  float logit_scale_ = 1.0f;
};

}  // namespace flywheel
