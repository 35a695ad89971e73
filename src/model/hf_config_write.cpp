// hf_config_json / infer_hf_architecture (model/hf_config.h): a ModelConfig as a Hugging Face
// config.json. Key names and meanings are those of transformers' configuration_qwen3.py,
// configuration_qwen3_moe.py and configuration_llama.py, the same keys parse_hf_config reads.
#include <string>

#include "core/error.h"
#include "model/hf_config.h"

namespace flywheel {
namespace {

using Json = nlohmann::json;

const HfArchitecture& find_target(const std::string& architecture) {
  if (const HfArchitecture* a = find_hf_architecture(architecture)) return *a;
  FW_INPUT_THROW("architecture ", architecture,
                 " cannot be exported (supported: Qwen3ForCausalLM, Qwen3MoeForCausalLM, LlamaForCausalLM)");
}

// What the architecture's modeling code cannot hold: refused by the model key, never dropped.
void check_expressible(const ModelConfig& m, const HfArchitecture& t) {
  if (m.is_moe())
    FW_INPUT_CHECK(!m.moe_shared_expert, "model.moe_shared_expert = true cannot be exported as ", t.name,
                   ": Hugging Face Qwen3-MoE has no shared expert (only Qwen2-MoE does)");
  if (t.moe) {
    FW_INPUT_CHECK(m.is_moe(), "model.moe_experts = 0 cannot be exported as ", t.name,
                   " (a dense model: use Qwen3ForCausalLM or LlamaForCausalLM)");
    FW_INPUT_CHECK(m.moe_layer_count() > 0, "model.moe_experts = ", m.moe_experts, " but no layer is MoE (",
                   "model.moe_decoder_sparse_step / moe_mlp_only_layers): ", t.name, " needs expert layers");
  } else {
    FW_INPUT_CHECK(!m.is_moe(), "model.moe_experts = ", m.moe_experts, " cannot be exported as ", t.name,
                   ", which has no experts (Qwen3MoeForCausalLM has; it needs model.qk_norm = true)");
  }
  if (t.qk_norm)
    FW_INPUT_CHECK(m.qk_norm, "model.qk_norm = false cannot be exported as ", t.name,
                   ", which always applies q_norm / k_norm (a model without them is LlamaForCausalLM)");
  else
    FW_INPUT_CHECK(!m.qk_norm, "model.qk_norm = true cannot be exported as ", t.name,
                   ", which has no q_norm / k_norm (Qwen3ForCausalLM has)");
}

Json rope_json(const ModelConfig& m, bool with_theta) {
  Json rope = Json::object();
  rope["rope_type"] = m.llama3_rope() ? "llama3" : "default";
  if (with_theta) rope["rope_theta"] = m.rope_theta;
  if (!m.llama3_rope()) return rope;
  rope["factor"] = m.rope_factor;
  rope["low_freq_factor"] = m.rope_low_freq_factor;
  rope["high_freq_factor"] = m.rope_high_freq_factor;
  rope["original_max_position_embeddings"] = m.rope_original_max_positions;
  return rope;
}

void write_moe(const ModelConfig& m, Json& out) {
  out["num_experts"] = m.moe_experts;
  out["num_experts_per_tok"] = m.moe_top_k;
  out["moe_intermediate_size"] = m.resolved_moe_d_ff();
  out["norm_topk_prob"] = m.moe_normalize_topk;
  out["decoder_sparse_step"] = m.moe_decoder_sparse_step;
  Json layers = Json::array();  // built explicitly: an initializer list of numbers could become anything
  for (int64_t layer : m.moe_mlp_only_layers) layers.push_back(layer);
  out["mlp_only_layers"] = layers;
  out["router_aux_loss_coef"] = m.moe_aux_loss_coef;
}

// Keys this writer owns: removed from `original` before the model's values are written, so that no
// stale value (an old rope form, a Qwen3-MoE key on a model that is now dense) survives.
// clang-format off
constexpr const char* kOwnedKeys[] = {
    "architectures", "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "intermediate_size", "max_position_embeddings", "rope_theta",
    "rope_scaling", "rope_parameters", "rms_norm_eps", "tie_word_embeddings", "attention_bias", "mlp_bias",
    "hidden_act", "use_sliding_window", "num_experts", "num_experts_per_tok", "moe_intermediate_size",
    "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers", "router_aux_loss_coef",
    "shared_expert_intermediate_size", "torch_dtype", "dtype", "transformers_version"};
// clang-format on

}  // namespace

nlohmann::json hf_config_json(const ModelConfig& m, const std::string& architecture, const nlohmann::json& original,
                              const std::string& torch_dtype) {
  const HfArchitecture& t = find_target(architecture);
  FW_CHECK(torch_dtype == "float32" || torch_dtype == "bfloat16", "torch_dtype ", torch_dtype);
  FW_CHECK(original.is_object(), "the original config.json must be an object");
  m.validate();
  check_expressible(m, t);
  const bool rope_parameters = original.contains("rope_parameters") && !original["rope_parameters"].is_null();
  const bool had_dtype = original.contains("dtype");  // transformers >= 4.56 writes "dtype"
  Json out = original;
  for (const char* key : kOwnedKeys) out.erase(key);
  Json names = Json::array();
  names.push_back(t.name);
  out["architectures"] = names;
  out["model_type"] = t.model_type;
  out["vocab_size"] = m.vocab_size;
  out["hidden_size"] = m.d_model;
  out["num_hidden_layers"] = m.n_layers;
  out["num_attention_heads"] = m.n_heads;
  out["num_key_value_heads"] = m.n_kv_heads;
  out["head_dim"] = m.resolved_head_dim();
  out["intermediate_size"] = m.d_ff;
  out["max_position_embeddings"] = m.max_seq_len;
  if (rope_parameters) {
    out["rope_parameters"] = rope_json(m, true);
  } else {
    out["rope_theta"] = m.rope_theta;
    out["rope_scaling"] = m.llama3_rope() ? rope_json(m, false) : Json(nullptr);
  }
  out["rms_norm_eps"] = m.norm_eps;
  out["tie_word_embeddings"] = m.tie_embeddings;
  out["attention_bias"] = m.attention_bias;
  out["hidden_act"] = "silu";
  if (t.qk_norm)
    out["use_sliding_window"] = false;
  else
    out["mlp_bias"] = false;
  // Newer Qwen3 configs list one attention type per layer; import refused sliding windows, so every
  // layer is full attention, and the list must follow the layer count.
  if (out.contains("layer_types")) {
    Json types = Json::array();
    for (int64_t i = 0; i < m.n_layers; ++i) types.push_back("full_attention");
    out["layer_types"] = types;
  }
  if (t.moe) write_moe(m, out);
  out["torch_dtype"] = torch_dtype;
  if (had_dtype) out["dtype"] = torch_dtype;
  return out;
}

std::string infer_hf_architecture(const ModelConfig& m) {
  if (m.is_moe()) {
    FW_INPUT_CHECK(m.qk_norm, "model.moe_experts = ", m.moe_experts,
                   " with model.qk_norm = false has no Hugging Face architecture (Qwen3MoeForCausalLM, the one "
                   "with experts, always applies q_norm / k_norm)");
    FW_INPUT_CHECK(!m.moe_shared_expert,
                   "model.moe_shared_expert = true has no Hugging Face architecture here (Qwen3MoeForCausalLM has "
                   "no shared expert)");
    return "Qwen3MoeForCausalLM";
  }
  return m.qk_norm ? "Qwen3ForCausalLM" : "LlamaForCausalLM";
}

}  // namespace flywheel
