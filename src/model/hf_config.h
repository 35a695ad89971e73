// A Hugging Face config.json as a ModelConfig: the first step of importing a model (issue #10).
//
// Architectures, by `architectures[0]` (and `model_type`, which must agree when present):
//   Qwen3ForCausalLM     model_type qwen3      qk_norm, explicit head_dim
//   Qwen3MoeForCausalLM  model_type qwen3_moe  + experts, top-k, norm_topk_prob, layer pattern
//   LlamaForCausalLM     model_type llama      Llama 3.x: optional rope_scaling "llama3"
// Keys read (transformers' configuration_qwen3.py / configuration_qwen3_moe.py / configuration_llama.py
// define them and their defaults, which are used when a key is absent): vocab_size, hidden_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, intermediate_size,
// max_position_embeddings, rope_theta, rms_norm_eps, tie_word_embeddings, attention_bias, hidden_act,
// rope_scaling or rope_parameters, use_sliding_window; for MoE num_experts, num_experts_per_tok,
// moe_intermediate_size, norm_topk_prob, decoder_sparse_step, mlp_only_layers, router_aux_loss_coef.
//
// What the model does not have is an error naming the key and the value, never ignored: another
// architecture, an activation other than SiLU, sliding-window attention, a rope_type other than
// default / llama3, attention or MLP biases we lack (mlp_bias), a shared expert. Keys that do not
// change the computation (torch_dtype, bos/eos ids, initializer_range, use_cache, ...) are ignored.
#pragma once

#include <string>

#include "model/config.h"

namespace flywheel {

struct HfModelConfig {
  std::string architecture;  // "Qwen3ForCausalLM", ...
  ModelConfig model;         // every architecture key set; training-only keys (init_std, kernels) default
};

// Parses the text of a config.json; `origin` (the file's path) starts every error message.
HfModelConfig parse_hf_config(const std::string& json_text, const std::string& origin);

}  // namespace flywheel
