#include "launch/hf_shape.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/hf_config.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

std::string value_text(int64_t v) { return std::to_string(v); }
std::string value_text(bool v) { return v ? "true" : "false"; }
std::string value_text(const std::string& v) { return v; }
std::string value_text(double v) {  // shortest round trip: 1e6 and 1000000 read the same
  char text[32];
  const auto [end, error] = std::to_chars(text, text + sizeof(text), v);
  return error == std::errc() ? std::string(text, end) : std::to_string(v);
}
std::string value_text(const std::vector<int64_t>& v) {
  std::string text;
  for (int64_t x : v) text += (text.empty() ? "" : ",") + std::to_string(x);
  return text;
}

// One [model] key that config.json determines: its name, the config.json key it comes from, and its
// value as shape text (resolved: head_dim 0 reads as d_model / n_heads).
struct ArchitectureKey {
  const char* key;
  const char* hf_key;
  std::function<std::string(const ModelConfig&)> text;
  std::function<void(ModelConfig& to, const ModelConfig& from)> copy;
  enum Applies { kAlways, kMoe, kLlama3Rope } applies = kAlways;
};

template <typename T>
ArchitectureKey key(const char* name, const char* hf_key, T ModelConfig::*member,
                    ArchitectureKey::Applies applies = ArchitectureKey::kAlways) {
  return {name, hf_key, [member](const ModelConfig& m) { return value_text(m.*member); },
          [member](ModelConfig& to, const ModelConfig& from) { to.*member = from.*member; }, applies};
}

const std::vector<ArchitectureKey>& architecture_keys() {
  using A = ArchitectureKey;
  static const std::vector<A> keys = [] {
    std::vector<A> k = {
        key("vocab_size", "vocab_size", &ModelConfig::vocab_size),
        key("d_model", "hidden_size", &ModelConfig::d_model),
        key("n_layers", "num_hidden_layers", &ModelConfig::n_layers),
        key("n_heads", "num_attention_heads", &ModelConfig::n_heads),
        key("n_kv_heads", "num_key_value_heads", &ModelConfig::n_kv_heads),
        key("d_ff", "intermediate_size", &ModelConfig::d_ff),
        key("rope_theta", "rope_theta", &ModelConfig::rope_theta),
        key("rope_scaling", "rope_scaling.rope_type", &ModelConfig::rope_scaling),
        key("rope_factor", "rope_scaling.factor", &ModelConfig::rope_factor, A::kLlama3Rope),
        key("rope_low_freq_factor", "rope_scaling.low_freq_factor", &ModelConfig::rope_low_freq_factor, A::kLlama3Rope),
        key("rope_high_freq_factor", "rope_scaling.high_freq_factor", &ModelConfig::rope_high_freq_factor,
            A::kLlama3Rope),
        key("rope_original_max_positions", "rope_scaling.original_max_position_embeddings",
            &ModelConfig::rope_original_max_positions, A::kLlama3Rope),
        key("norm_eps", "rms_norm_eps", &ModelConfig::norm_eps),
        key("tie_embeddings", "tie_word_embeddings", &ModelConfig::tie_embeddings),
        key("qk_norm", "architectures (Qwen3 attention has q_norm and k_norm)", &ModelConfig::qk_norm),
        key("attention_bias", "attention_bias", &ModelConfig::attention_bias),
        key("moe_experts", "num_experts", &ModelConfig::moe_experts),
        key("moe_top_k", "num_experts_per_tok", &ModelConfig::moe_top_k, A::kMoe),
        key("moe_shared_expert", "architectures (Qwen3-MoE has no shared expert)", &ModelConfig::moe_shared_expert,
            A::kMoe),
        key("moe_normalize_topk", "norm_topk_prob", &ModelConfig::moe_normalize_topk, A::kMoe),
        key("moe_decoder_sparse_step", "decoder_sparse_step", &ModelConfig::moe_decoder_sparse_step, A::kMoe),
        key("moe_mlp_only_layers", "mlp_only_layers", &ModelConfig::moe_mlp_only_layers, A::kMoe),
    };
    k.push_back({"head_dim", "head_dim", [](const ModelConfig& m) { return value_text(m.resolved_head_dim()); },
                 [](ModelConfig& to, const ModelConfig& from) { to.head_dim = from.resolved_head_dim(); }});
    k.push_back({"moe_d_ff", "moe_intermediate_size",
                 [](const ModelConfig& m) { return value_text(m.resolved_moe_d_ff()); },
                 [](ModelConfig& to, const ModelConfig& from) { to.moe_d_ff = from.resolved_moe_d_ff(); }, A::kMoe});
    return k;
  }();
  return keys;
}

bool applies(const ArchitectureKey& k, const ModelConfig& m) {
  return k.applies == ArchitectureKey::kAlways || (k.applies == ArchitectureKey::kMoe && m.is_moe()) ||
         (k.applies == ArchitectureKey::kLlama3Rope && m.llama3_rope());
}

std::string read_config(const std::string& dir, std::string& path) {
  std::error_code ec;
  FW_INPUT_CHECK(fs::is_directory(dir, ec), "model.from_hf = '", dir, "': not a directory (expected a Hugging Face ",
                 "model directory: config.json with model.safetensors or model.safetensors.index.json)");
  path = (fs::path(dir) / "config.json").string();
  FW_INPUT_CHECK(fs::is_regular_file(path, ec), "model.from_hf = '", dir, "': no config.json in it (expected a ",
                 "Hugging Face model directory: config.json with model.safetensors or model.safetensors.index.json)");
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in.good(), "cannot open ", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The two keys the shape may set on its own (see the header).
void apply_training_keys(const ModelConfig& hf, ModelConfig& model, const std::set<std::string>& explicit_keys,
                         const std::function<std::string(const std::string&)>& origin, const std::string& path) {
  if (explicit_keys.count("model.max_seq_len") == 0) {
    model.max_seq_len = hf.max_seq_len;
  } else {
    FW_INPUT_CHECK(model.max_seq_len <= hf.max_seq_len, origin("model.max_seq_len"),
                   "model.max_seq_len = ", model.max_seq_len, " is longer than ", path,
                   "'s max_position_embeddings = ", hf.max_seq_len, " (the model's positions end there)");
  }
  if (explicit_keys.count("model.moe_aux_loss_coef") == 0) model.moe_aux_loss_coef = hf.moe_aux_loss_coef;
}

}  // namespace

std::vector<std::string> resolve_hf_model(const std::string& dir, ModelConfig& model,
                                          const std::set<std::string>& explicit_keys,
                                          const std::function<std::string(const std::string&)>& origin) {
  std::string path;
  const std::string text = read_config(dir, path);
  const ModelConfig hf = parse_hf_config(text, path).model;
  std::vector<std::string> overrides;
  for (const ArchitectureKey& k : architecture_keys()) {
    const std::string name = std::string("model.") + k.key;
    const std::string want = k.text(hf);
    if (explicit_keys.count(name) != 0 && k.text(model) != want)
      FW_INPUT_THROW(origin(name), name, " = ", k.text(model), " contradicts ", path, ": ", k.hf_key, " gives ", want,
                     " (remove the key from the shape, or point model.from_hf at the model it describes)");
    k.copy(model, hf);
  }
  apply_training_keys(hf, model, explicit_keys, origin, path);
  for (const ArchitectureKey& k : architecture_keys())
    if (applies(k, model)) overrides.push_back("--" + std::string("model.") + k.key + "=" + k.text(model));
  overrides.push_back("--model.max_seq_len=" + value_text(model.max_seq_len));
  if (model.is_moe()) overrides.push_back("--model.moe_aux_loss_coef=" + value_text(model.moe_aux_loss_coef));
  return overrides;
}

void resolve_tokenizer(DataConfig& data, const std::string& model_dir) {
  if (data.tokenizer != "auto") return;
  std::error_code ec;
  const bool has = !model_dir.empty() && fs::is_regular_file(fs::path(model_dir) / "tokenizer.json", ec);
  data.tokenizer = has ? model_dir : "byte";
}

}  // namespace flywheel
