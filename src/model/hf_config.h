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
//
// The inverse, hf_config_json, writes the config.json of a ModelConfig for `flywheel-ckpt export
// --format hf`: every key above, so that parse_hf_config gives the same model back, and nothing that
// the architecture cannot hold (a shared expert, q/k norms on Llama, experts on dense Qwen3) is
// dropped silently: it is an error naming the key.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "model/config.h"

namespace flywheel {

// The architectures Flywheel reads and writes: the one table of import and export.
struct HfArchitecture {
  const char* name;        // architectures[0]: "Qwen3ForCausalLM"
  const char* model_type;  // "qwen3"
  bool qk_norm, moe;
  int64_t default_max_positions;  // max_position_embeddings when absent (transformers' default)
};
// nullptr when `name` is none of them.
const HfArchitecture* find_hf_architecture(const std::string& name);

struct HfModelConfig {
  std::string architecture;  // "Qwen3ForCausalLM", ...
  ModelConfig model;         // every architecture key set; training-only keys (init_std, kernels) default
};

// Parses the text of a config.json; `origin` (the file's path) starts every error message.
HfModelConfig parse_hf_config(const std::string& json_text, const std::string& origin);

// The config.json of `model` as `architecture` (one of the three above). Every architecture key is
// written from `model`; the other keys of `original` (the config.json the model was imported from,
// or an empty object: bos_token_id, eos_token_id, pad_token_id, initializer_range, ...) are kept,
// except transformers_version (we are not transformers). `torch_dtype` is "float32" or "bfloat16":
// the dtype of the weights written beside it. A rope given as `rope_parameters` in `original`
// (transformers 5) is written in that form, otherwise as rope_theta + rope_scaling (4.x).
// Throws InputError naming the model key the architecture cannot express, or the architecture.
nlohmann::json hf_config_json(const ModelConfig& model, const std::string& architecture,
                              const nlohmann::json& original, const std::string& torch_dtype);

// The architecture of a model Flywheel initialised itself: experts -> Qwen3MoeForCausalLM (which
// needs qk_norm), qk_norm -> Qwen3ForCausalLM, otherwise LlamaForCausalLM. Throws InputError naming
// the keys when none fits (experts without qk_norm, a shared expert).
std::string infer_hf_architecture(const ModelConfig& model);

}  // namespace flywheel
