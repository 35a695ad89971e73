// Model hyper-parameters: a decoder-only transformer of the Llama / Qwen3 family.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "model/lora_config.h"

namespace flywheel {

struct ModelConfig {
  int64_t vocab_size = 259;  // byte tokenizer: 256 bytes + BOS/EOS/PAD
  int64_t d_model = 64;
  int64_t n_layers = 2;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 4;  // grouped-query attention: n_heads / n_kv_heads query heads share a K/V head
  int64_t head_dim = 0;    // 0: d_model / n_heads
  int64_t d_ff = 172;      // dense SwiGLU hidden width
  int64_t max_seq_len = 256;
  double rope_theta = 10000.0;
  // RoPE frequency scaling: "none" or "llama3" (ops/rope.h gives the rule; HF rope_scaling with
  // rope_type "llama3"). The four numbers are read only with "llama3".
  std::string rope_scaling = "none";
  double rope_factor = 8.0;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;
  int64_t rope_original_max_positions = 8192;  // tokens
  double norm_eps = 1e-5;
  bool tie_embeddings = false;  // LM head reuses the token embedding matrix
  // Qwen3: RMSNorm over head_dim on every head of q and k after the projection, before RoPE, with
  // one learned [head_dim] gain each for q and k shared by the heads (self_attn.q_norm / k_norm).
  bool qk_norm = false;
  // HF LlamaConfig / Qwen3Config attention_bias: q, k, v AND o projections carry a bias.
  bool attention_bias = false;
  double init_std = 0.02;       // N(0, init_std); o_proj/down_proj scaled by 1/sqrt(2 n_layers) (GPT-2)

  // Mixture of experts (moe_experts == 0: dense FFN in every layer).
  int64_t moe_experts = 0;
  int64_t moe_top_k = 2;
  int64_t moe_d_ff = 0;  // expert hidden width; 0: d_ff
  bool moe_shared_expert = false;
  bool moe_normalize_topk = true;
  double moe_aux_loss_coef = 0.01;
  // Which layers are MoE (HF Qwen3MoeDecoderLayer): layer i is iff moe_experts > 0, i is not in
  // moe_mlp_only_layers and (i + 1) % moe_decoder_sparse_step == 0; the others are dense with d_ff.
  int64_t moe_decoder_sparse_step = 1;
  std::vector<int64_t> moe_mlp_only_layers;

  // Matrix products of the forward pass: "blas" (OpenBLAS sgemm: fastest, but a row's bits depend
  // on the batch it is computed in) or "invariant" (ops/linear_invariant.h: every output element
  // has a fixed reduction order, so serving with a KV cache reproduces training's bits). Backward
  // always uses OpenBLAS.
  std::string forward_kernels = "blas";

  // Low-rank adapters on a frozen base ([lora]; model/lora_config.h). lora.rank = 0: none.
  LoraConfig lora;

  bool is_moe() const { return moe_experts > 0; }  // some layer may be MoE (see is_moe_layer)
  bool is_moe_layer(int64_t layer) const;
  int64_t moe_layer_count() const;
  bool llama3_rope() const { return rope_scaling == "llama3"; }
  ops::RopeScaling rope_scaling_params() const;
  int64_t resolved_head_dim() const { return head_dim > 0 ? head_dim : d_model / n_heads; }
  int64_t resolved_moe_d_ff() const { return moe_d_ff > 0 ? moe_d_ff : d_ff; }
  bool invariant_forward() const { return forward_kernels == "invariant"; }
  LinearKernel forward_kernel() const { return invariant_forward() ? LinearKernel::kInvariant : LinearKernel::kBlas; }

  // Throws flywheel::InputError naming the offending key (as written in a shape file: "model.n_heads"),
  // its value, and what is allowed.
  void validate() const;
  void validate_rope_scaling() const;
  void validate_layer_pattern() const;

  // Parameters that take part in matrix products per token (for FLOP counts): everything except
  // the input embedding lookup (which counts when tied, as the LM head) and the norm vectors.
  // Active parameters for MoE count top_k experts (+ shared expert), not all experts.
  int64_t active_matmul_params() const;
  int64_t total_params() const;
  // total_params() in floating point: no overflow at any sizes, for the memory check of a model too
  // large to count in int64 (model.d_model = 4000000000).
  double approx_total_params() const;
};

}  // namespace flywheel
