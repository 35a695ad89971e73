// The decoder-only transformer (dense or MoE), fp32, one rank: registry of named parameters,
// forward, and backward by hand (no autograd), with activations kept per layer between the two.
//
//   x = embed[tokens]
//   per layer: x = x + Attn(RMSNorm(x));  x = x + FFN(RMSNorm(x))      (FFN dense SwiGLU or MoE)
//   logits = RMSNorm(x) W_lm^T              (W_lm = embed when tie_embeddings)
//   loss = sum_t ce_weight_t * CE(logits_t, target_t) + aux_scale * mean_layers(aux_layer)
//
// The LM head runs in chunks of rows fused with the cross-entropy: a chunk's logits become its
// dlogits in place, so the [tokens, vocab] matrix never exists whole during training.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "model/attention_block.h"
#include "model/config.h"
#include "model/ffn_block.h"
#include "model/moe_block.h"
#include "model/parameters.h"
#include "ops/rope.h"

namespace flywheel {

struct MicroBatchResult {
  double ce_loss = 0;   // sum_t ce_weight_t * CE_t   (already weighted)
  double aux_loss = 0;  // mean over layers of aux_layer (coefficient-free; 0 for dense)
};

class Transformer {
 public:
  explicit Transformer(const ModelConfig& config);

  const ModelConfig& config() const { return config_; }
  ParameterSet& params() { return params_; }
  const ParameterSet& params() const { return params_; }
  void initialize(uint64_t seed) { params_.initialize(seed, config_.init_std, config_.n_layers); }

  // One micro-batch of rows x seq tokens: forward, then backward; gradients accumulate into
  // params().grads(). ce_weight[t] = loss_mask[t] / (loss tokens in the global batch).
  // token_logprob (optional, [rows * seq]) receives log p(target_t) for every position.
  MicroBatchResult forward_backward(const int32_t* tokens, const int32_t* targets, const float* ce_weight,
                                    int64_t rows, int64_t seq, double aux_scale, float* token_logprob = nullptr);

  // Forward only: logits[rows, seq, vocab] for every position.
  void forward_logits(const int32_t* tokens, int64_t rows, int64_t seq, float* logits);

 private:
  struct LayerIds {
    int input_norm, q, k, v, o, post_norm;
    int gate, up, down;  // dense
    int router;
    std::vector<int> expert_gate, expert_up, expert_down;
    int shared_gate = -1, shared_up = -1, shared_down = -1;
  };
  struct LayerActivations {
    Buffer<float> x_in;   // residual stream entering the layer [n, d]
    Buffer<float> x_mid;  // after the attention half [n, d]
    Buffer<float> ffn_normed, ffn_rstd;
    AttentionActivations attention;
    SwiGluActivations dense;
    MoeActivations moe;
  };

  void register_parameters();
  AttentionWeights attention_weights(int layer) const;
  AttentionGrads attention_grads(int layer);
  SwiGluWeights swiglu_weights(int gate, int up, int down) const;
  SwiGluGrads swiglu_grads(int gate, int up, int down);
  MoeWeights moe_weights(int layer) const;
  MoeGrads moe_grads(int layer);
  const float* lm_head() const;
  float* lm_head_grad();

  // Runs embedding + layers + final norm for n = rows * seq tokens; leaves final_normed_ filled.
  void forward_trunk(const int32_t* tokens, int64_t rows, int64_t seq);
  void ffn_forward(int layer, int64_t n);
  void ffn_backward(int layer, const float* dx_out, float* dx, int64_t n, double aux_weight);

  ModelConfig config_;
  ParameterSet params_;
  ops::RopeTable<float> rope_;
  int embed_id_ = -1, final_norm_id_ = -1, lm_head_id_ = -1;
  std::vector<LayerIds> layer_ids_;
  std::vector<LayerActivations> layer_act_;
  Buffer<float> final_in_, final_normed_, final_rstd_;
};

}  // namespace flywheel
