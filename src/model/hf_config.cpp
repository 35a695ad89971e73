#include "model/hf_config.h"

#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/error.h"

namespace flywheel {
namespace {

using Json = nlohmann::json;

constexpr HfArchitecture kArchitectures[] = {
    {"Qwen3ForCausalLM", "qwen3", true, false, 32768},
    {"Qwen3MoeForCausalLM", "qwen3_moe", true, true, 32768},
    {"LlamaForCausalLM", "llama", false, false, 2048},
};

// Typed reads of one config object; every error names the file and the key.
class Keys {
 public:
  Keys(const Json& json, std::string origin) : json_(json), origin_(std::move(origin)) {}

  bool has(const char* key) const { return json_.contains(key) && !json_[key].is_null(); }

  int64_t integer(const char* key, std::optional<int64_t> fallback = std::nullopt) const {
    if (!has(key)) return required(key, fallback);
    const Json& v = json_[key];
    FW_INPUT_CHECK(v.is_number_integer(), origin_, ": \"", key, "\" is ", v.dump(), "; expected an integer");
    return v.get<int64_t>();
  }
  double number(const char* key, std::optional<double> fallback = std::nullopt) const {
    if (!has(key)) return required(key, fallback);
    const Json& v = json_[key];
    FW_INPUT_CHECK(v.is_number(), origin_, ": \"", key, "\" is ", v.dump(), "; expected a number");
    return v.get<double>();
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const Json& v = json_[key];
    FW_INPUT_CHECK(v.is_boolean(), origin_, ": \"", key, "\" is ", v.dump(), "; expected true or false");
    return v.get<bool>();
  }
  std::string text(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    const Json& v = json_[key];
    FW_INPUT_CHECK(v.is_string(), origin_, ": \"", key, "\" is ", v.dump(), "; expected a string");
    return v.get<std::string>();
  }
  const Json& at(const char* key) const { return json_[key]; }
  const std::string& origin() const { return origin_; }

 private:
  template <typename T>
  T required(const char* key, std::optional<T> fallback) const {
    FW_INPUT_CHECK(fallback.has_value(), origin_, ": missing \"", key, "\"");
    return *fallback;
  }

  const Json& json_;
  std::string origin_;
};

const HfArchitecture& find_architecture(const Keys& keys) {
  FW_INPUT_CHECK(keys.has("architectures") && keys.at("architectures").is_array() &&
                     keys.at("architectures").size() == 1 && keys.at("architectures")[0].is_string(),
                 keys.origin(), ": \"architectures\" must be a list of one name, e.g. [\"Qwen3ForCausalLM\"]");
  const std::string name = keys.at("architectures")[0].get<std::string>();
  for (const HfArchitecture& a : kArchitectures) {
    if (name != a.name) continue;
    const std::string type = keys.text("model_type", a.model_type);
    FW_INPUT_CHECK(type == a.model_type, keys.origin(), ": model_type \"", type, "\" does not match ", name,
                   " (expected \"", a.model_type, "\")");
    return a;
  }
  FW_INPUT_THROW(keys.origin(), ": architecture ", name,
                 " is not supported (supported: Qwen3ForCausalLM, Qwen3MoeForCausalLM, LlamaForCausalLM)");
}

// rope_scaling (transformers 4.x) or rope_parameters (5.x, which also holds rope_theta).
void read_rope(const Keys& keys, ModelConfig& m) {
  const bool scaling = keys.has("rope_scaling"), parameters = keys.has("rope_parameters");
  FW_INPUT_CHECK(!(scaling && parameters), keys.origin(), ": both \"rope_scaling\" and \"rope_parameters\" are given");
  m.rope_theta = keys.number("rope_theta", 10000.0);
  if (!scaling && !parameters) return;
  const char* key = scaling ? "rope_scaling" : "rope_parameters";
  FW_INPUT_CHECK(keys.at(key).is_object(), keys.origin(), ": \"", key, "\" must be an object");
  const Keys rope(keys.at(key), keys.origin() + " " + key);
  const std::string type = rope.has("rope_type") ? rope.text("rope_type", "") : rope.text("type", "default");
  if (parameters) m.rope_theta = rope.number("rope_theta", m.rope_theta);
  if (type == "default") return;
  FW_INPUT_CHECK(type == "llama3", keys.origin(), ": ", key, " rope_type \"", type,
                 "\" is not supported (supported: default, llama3)");
  m.rope_scaling = "llama3";
  m.rope_factor = rope.number("factor");
  m.rope_low_freq_factor = rope.number("low_freq_factor");
  m.rope_high_freq_factor = rope.number("high_freq_factor");
  m.rope_original_max_positions = rope.integer("original_max_position_embeddings");
}

void read_moe(const Keys& keys, ModelConfig& m) {
  m.moe_experts = keys.integer("num_experts");
  m.moe_top_k = keys.integer("num_experts_per_tok");
  m.moe_d_ff = keys.integer("moe_intermediate_size");
  m.moe_normalize_topk = keys.boolean("norm_topk_prob", false);
  m.moe_decoder_sparse_step = keys.integer("decoder_sparse_step", 1);
  m.moe_aux_loss_coef = keys.number("router_aux_loss_coef", 0.001);
  m.moe_shared_expert = false;  // Qwen3-MoE has none (Qwen2-MoE's shared_expert_intermediate_size)
  FW_INPUT_CHECK(keys.integer("shared_expert_intermediate_size", 0) == 0, keys.origin(),
                 ": \"shared_expert_intermediate_size\" is set, but Qwen3MoeForCausalLM has no shared expert");
  if (!keys.has("mlp_only_layers")) return;
  const Json& layers = keys.at("mlp_only_layers");
  FW_INPUT_CHECK(layers.is_array(), keys.origin(), ": \"mlp_only_layers\" must be a list of layer indices");
  for (const Json& layer : layers) {
    FW_INPUT_CHECK(layer.is_number_integer(), keys.origin(), ": \"mlp_only_layers\" holds ", layer.dump(),
                   "; expected layer indices");
    m.moe_mlp_only_layers.push_back(layer.get<int64_t>());
  }
}

// Features of the config that the model lacks: refused, never silently dropped.
void refuse_unsupported(const Keys& keys) {
  const std::string activation = keys.text("hidden_act", "silu");
  FW_INPUT_CHECK(activation == "silu", keys.origin(), ": hidden_act \"", activation,
                 "\" is not supported (the MLP is SwiGLU: silu)");
  FW_INPUT_CHECK(!keys.boolean("use_sliding_window", false), keys.origin(),
                 ": use_sliding_window = true: sliding-window attention is not supported");
  FW_INPUT_CHECK(!keys.boolean("mlp_bias", false), keys.origin(), ": mlp_bias = true is not supported");
}

}  // namespace

const HfArchitecture* find_hf_architecture(const std::string& name) {
  for (const HfArchitecture& a : kArchitectures)
    if (name == a.name) return &a;
  return nullptr;
}

HfModelConfig parse_hf_config(const std::string& json_text, const std::string& origin) {
  Json json;
  try {
    json = Json::parse(json_text);
  } catch (const Json::parse_error& e) {
    FW_INPUT_THROW(origin, ": not valid JSON (", e.what(), ")");
  }
  FW_INPUT_CHECK(json.is_object(), origin, ": expected a JSON object, found ", json.type_name());
  const Keys keys(json, origin);
  HfModelConfig out;
  const HfArchitecture& arch = find_architecture(keys);
  out.architecture = arch.name;
  refuse_unsupported(keys);
  ModelConfig& m = out.model;
  m.vocab_size = keys.integer("vocab_size");
  m.d_model = keys.integer("hidden_size");
  m.n_layers = keys.integer("num_hidden_layers");
  m.n_heads = keys.integer("num_attention_heads");
  m.n_kv_heads = keys.integer("num_key_value_heads", m.n_heads);
  m.d_ff = keys.integer("intermediate_size");
  FW_INPUT_CHECK(m.n_heads > 0, origin, ": num_attention_heads = ", m.n_heads, "; must be > 0");
  m.head_dim = keys.integer("head_dim", m.d_model / m.n_heads);
  m.max_seq_len = keys.integer("max_position_embeddings", arch.default_max_positions);
  m.norm_eps = keys.number("rms_norm_eps", 1e-6);
  m.tie_embeddings = keys.boolean("tie_word_embeddings", false);
  m.attention_bias = keys.boolean("attention_bias", false);
  m.qk_norm = arch.qk_norm;
  read_rope(keys, m);
  if (arch.moe) read_moe(keys, m);
  try {
    m.validate();
  } catch (const InputError& e) {
    FW_INPUT_THROW(origin, ": the model it describes is not valid: ", e.what());
  }
  return out;
}

}  // namespace flywheel
