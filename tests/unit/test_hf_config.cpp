// parse_hf_config on the config.json of published models (values as the Hugging Face hub lists them
// for Qwen/Qwen3-0.6B, meta-llama/Llama-3.2-1B and Qwen/Qwen3-30B-A3B), then one defect at a time;
// hf_config_json, the inverse, on the same configs and on models Flywheel initialises itself.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "model/hf_config.h"

namespace flywheel {
namespace {

using Json = nlohmann::json;

Json qwen3_0_6b() {
  return Json::parse(R"({
    "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "vocab_size": 151936,
    "hidden_size": 1024, "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 8,
    "head_dim": 128, "intermediate_size": 3072, "max_position_embeddings": 40960, "rope_theta": 1000000,
    "rope_scaling": null, "rms_norm_eps": 1e-06, "tie_word_embeddings": true, "attention_bias": false,
    "attention_dropout": 0.0, "hidden_act": "silu", "use_sliding_window": false, "sliding_window": null,
    "max_window_layers": 28, "torch_dtype": "bfloat16", "bos_token_id": 151643, "eos_token_id": 151645,
    "initializer_range": 0.02, "use_cache": true, "transformers_version": "4.51.0"})");
}

Json llama_3_2_1b() {
  return Json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256, "hidden_size": 2048,
    "num_hidden_layers": 16, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 64,
    "intermediate_size": 8192, "max_position_embeddings": 131072, "rope_theta": 500000.0,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rms_norm_eps": 1e-05, "tie_word_embeddings": true, "attention_bias": false, "mlp_bias": false,
    "hidden_act": "silu", "pretraining_tp": 1, "torch_dtype": "bfloat16"})");
}

Json qwen3_30b_a3b() {
  return Json::parse(R"({
    "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "vocab_size": 151936,
    "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
    "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128,
    "num_experts_per_tok": 8, "norm_topk_prob": true, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "router_aux_loss_coef": 0.001, "output_router_logits": false, "max_position_embeddings": 40960,
    "rope_theta": 1000000.0, "rms_norm_eps": 1e-06, "tie_word_embeddings": false, "hidden_act": "silu",
    "use_sliding_window": false})");
}

HfModelConfig parse(const Json& json) { return parse_hf_config(json.dump(), "m/config.json"); }

// The message of the InputError that parsing `json` throws ("" when it parses).
std::string refusal(const Json& json) {
  try {
    parse(json);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(HfConfig, Qwen3SetsEveryArchitectureKey) {
  const HfModelConfig c = parse(qwen3_0_6b());
  EXPECT_EQ(c.architecture, "Qwen3ForCausalLM");
  const ModelConfig& m = c.model;
  EXPECT_EQ(m.vocab_size, 151936);
  EXPECT_EQ(m.d_model, 1024);
  EXPECT_EQ(m.n_layers, 28);
  EXPECT_EQ(m.n_heads, 16);
  EXPECT_EQ(m.n_kv_heads, 8);
  EXPECT_EQ(m.resolved_head_dim(), 128);  // not hidden / heads = 64
  EXPECT_EQ(m.d_ff, 3072);
  EXPECT_EQ(m.max_seq_len, 40960);
  EXPECT_EQ(m.rope_theta, 1e6);
  EXPECT_EQ(m.norm_eps, 1e-6);
  EXPECT_TRUE(m.tie_embeddings);
  EXPECT_TRUE(m.qk_norm);
  EXPECT_FALSE(m.attention_bias);
  EXPECT_EQ(m.rope_scaling, "none");
  EXPECT_FALSE(m.is_moe());
}

TEST(HfConfig, Llama32ReadsLlama3RopeScalingFromEitherKey) {
  const ModelConfig m = parse(llama_3_2_1b()).model;
  EXPECT_FALSE(m.qk_norm);
  EXPECT_EQ(m.resolved_head_dim(), 64);
  EXPECT_EQ(m.rope_theta, 5e5);
  EXPECT_EQ(m.rope_scaling, "llama3");
  EXPECT_EQ(m.rope_factor, 32.0);
  EXPECT_EQ(m.rope_low_freq_factor, 1.0);
  EXPECT_EQ(m.rope_high_freq_factor, 4.0);
  EXPECT_EQ(m.rope_original_max_positions, 8192);
  EXPECT_EQ(m.norm_eps, 1e-5);
  // transformers 5: rope_parameters, holding rope_theta too.
  Json v5 = llama_3_2_1b();
  Json rope = v5["rope_scaling"];
  rope["rope_theta"] = 250000.0;
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  v5["rope_parameters"] = rope;
  const ModelConfig n = parse(v5).model;
  EXPECT_EQ(n.rope_theta, 2.5e5);
  EXPECT_EQ(n.rope_scaling, "llama3");
  EXPECT_EQ(n.rope_factor, 32.0);
}

TEST(HfConfig, AbsentOptionalKeysTakeTransformersDefaults) {
  Json json = llama_3_2_1b();
  for (const char* key : {"num_key_value_heads", "head_dim", "rope_theta", "rope_scaling", "rms_norm_eps",
                          "tie_word_embeddings", "max_position_embeddings"})
    json.erase(key);
  const ModelConfig m = parse(json).model;
  EXPECT_EQ(m.n_kv_heads, 32);
  EXPECT_EQ(m.resolved_head_dim(), 2048 / 32);
  EXPECT_EQ(m.rope_theta, 10000.0);
  EXPECT_EQ(m.rope_scaling, "none");
  EXPECT_EQ(m.norm_eps, 1e-6);
  EXPECT_FALSE(m.tie_embeddings);
  EXPECT_EQ(m.max_seq_len, 2048);
}

TEST(HfConfig, Qwen3MoeSetsExpertsAndTheLayerPattern) {
  Json json = qwen3_30b_a3b();
  ModelConfig m = parse(json).model;
  EXPECT_EQ(m.moe_experts, 128);
  EXPECT_EQ(m.moe_top_k, 8);
  EXPECT_EQ(m.resolved_moe_d_ff(), 768);
  EXPECT_TRUE(m.moe_normalize_topk);
  EXPECT_FALSE(m.moe_shared_expert);
  EXPECT_EQ(m.moe_aux_loss_coef, 0.001);
  EXPECT_TRUE(m.qk_norm);
  EXPECT_EQ(m.moe_layer_count(), 48);
  json["decoder_sparse_step"] = 2;
  json["mlp_only_layers"] = {1, 5};
  m = parse(json).model;
  EXPECT_FALSE(m.is_moe_layer(0));
  EXPECT_FALSE(m.is_moe_layer(1));  // (1 + 1) % 2 == 0, but listed in mlp_only_layers
  EXPECT_TRUE(m.is_moe_layer(3));
  EXPECT_FALSE(m.is_moe_layer(5));
  EXPECT_EQ(m.moe_layer_count(), 22);
}

TEST(HfConfig, WhatTheModelLacksIsRefusedNamingIt) {
  struct Case {
    const char* what;
    Json json;
    const char* message;
  };
  auto with = [](Json json, const char* key, const Json& value) {
    json[key] = value;
    return json;
  };
  auto without = [](Json json, const char* key) {
    json.erase(key);
    return json;
  };
  const Case cases[] = {
      {"another architecture", with(qwen3_0_6b(), "architectures", {"MistralForCausalLM"}),
       "architecture MistralForCausalLM is not supported (supported: Qwen3ForCausalLM"},
      {"two architectures", with(qwen3_0_6b(), "architectures", {"A", "B"}), "must be a list of one name"},
      {"model_type disagrees", with(qwen3_0_6b(), "model_type", "llama"), "model_type \"llama\" does not match"},
      {"sliding window", with(qwen3_0_6b(), "use_sliding_window", true), "sliding-window attention"},
      {"gelu", with(qwen3_0_6b(), "hidden_act", "gelu"), "hidden_act \"gelu\" is not supported"},
      {"mlp bias", with(llama_3_2_1b(), "mlp_bias", true), "mlp_bias = true is not supported"},
      {"yarn", with(llama_3_2_1b(), "rope_scaling", {{"rope_type", "yarn"}, {"factor", 4.0}}),
       "rope_scaling rope_type \"yarn\" is not supported (supported: default, llama3)"},
      {"llama3 without factor", with(llama_3_2_1b(), "rope_scaling", {{"rope_type", "llama3"}}),
       "rope_scaling: missing \"factor\""},
      {"missing hidden_size", without(qwen3_0_6b(), "hidden_size"), "missing \"hidden_size\""},
      {"a string for an integer", with(qwen3_0_6b(), "num_hidden_layers", "28"),
       "\"num_hidden_layers\" is \"28\"; expected an integer"},
      {"a float for an integer", with(qwen3_0_6b(), "vocab_size", 1.5), "\"vocab_size\" is 1.5; expected an integer"},
      {"kv heads not dividing heads", with(qwen3_0_6b(), "num_key_value_heads", 5), "the model it describes"},
      {"shared expert", with(qwen3_30b_a3b(), "shared_expert_intermediate_size", 512), "no shared expert"},
      {"mlp_only_layers not a list", with(qwen3_30b_a3b(), "mlp_only_layers", 3), "must be a list of layer"},
      {"moe without experts", without(qwen3_30b_a3b(), "num_experts"), "missing \"num_experts\""},
  };
  for (const Case& c : cases) {
    const std::string message = refusal(c.json);
    EXPECT_NE(message.find(c.message), std::string::npos) << c.what << ": " << message;
    EXPECT_EQ(message.rfind("m/config.json", 0), 0u) << c.what << ": " << message;
  }
  EXPECT_NE(refusal(Json::array()).find("expected a JSON object"), std::string::npos);
  EXPECT_THROW(parse_hf_config("{\"architectures\": [", "m/config.json"), InputError);
}

// Every field a config.json carries, resolved (head_dim 0 and moe_d_ff 0 mean "derived").
void expect_same_architecture(const ModelConfig& a, const ModelConfig& b, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.d_model, b.d_model);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.resolved_head_dim(), b.resolved_head_dim());
  EXPECT_EQ(a.d_ff, b.d_ff);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling, b.rope_scaling);
  if (a.llama3_rope()) {
    EXPECT_EQ(a.rope_factor, b.rope_factor);
    EXPECT_EQ(a.rope_low_freq_factor, b.rope_low_freq_factor);
    EXPECT_EQ(a.rope_high_freq_factor, b.rope_high_freq_factor);
    EXPECT_EQ(a.rope_original_max_positions, b.rope_original_max_positions);
  }
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.moe_experts, b.moe_experts);
  if (!a.is_moe()) return;
  EXPECT_EQ(a.moe_top_k, b.moe_top_k);
  EXPECT_EQ(a.resolved_moe_d_ff(), b.resolved_moe_d_ff());
  EXPECT_EQ(a.moe_shared_expert, b.moe_shared_expert);
  EXPECT_EQ(a.moe_normalize_topk, b.moe_normalize_topk);
  EXPECT_EQ(a.moe_aux_loss_coef, b.moe_aux_loss_coef);
  EXPECT_EQ(a.moe_decoder_sparse_step, b.moe_decoder_sparse_step);
  EXPECT_EQ(a.moe_mlp_only_layers, b.moe_mlp_only_layers);
}

// parse(write(config)), through JSON text as a file would carry it.
HfModelConfig round_trip(const ModelConfig& m, const std::string& architecture, const Json& original) {
  return parse_hf_config(hf_config_json(m, architecture, original, "bfloat16").dump(2), "out/config.json");
}

TEST(HfConfigWrite, PublishedConfigsRoundTrip) {
  Json llama_v5 = llama_3_2_1b();  // transformers 5's rope_parameters form stays in that form
  llama_v5["rope_parameters"] = llama_v5["rope_scaling"];
  llama_v5["rope_parameters"]["rope_theta"] = llama_v5["rope_theta"];
  llama_v5.erase("rope_scaling");
  llama_v5.erase("rope_theta");
  for (const Json& published : {qwen3_0_6b(), llama_3_2_1b(), qwen3_30b_a3b(), llama_v5}) {
    const HfModelConfig first = parse(published);
    const HfModelConfig again = round_trip(first.model, first.architecture, published);
    EXPECT_EQ(again.architecture, first.architecture);
    expect_same_architecture(first.model, again.model, first.architecture);
  }
  const Json v5 = hf_config_json(parse(llama_v5).model, "LlamaForCausalLM", llama_v5, "float32");
  EXPECT_FALSE(v5.contains("rope_scaling"));
  EXPECT_FALSE(v5.contains("rope_theta"));
  EXPECT_EQ(v5["rope_parameters"]["rope_theta"], 500000.0);
  EXPECT_EQ(v5["rope_parameters"]["rope_type"], "llama3");
}

TEST(HfConfigWrite, KeepsTheOriginalsOtherKeysAndWritesTheDtype) {
  const Json published = qwen3_0_6b();
  const Json out = hf_config_json(parse(published).model, "Qwen3ForCausalLM", published, "float32");
  EXPECT_EQ(out["bos_token_id"], 151643);
  EXPECT_EQ(out["eos_token_id"], 151645);
  EXPECT_EQ(out["initializer_range"], 0.02);
  EXPECT_EQ(out["max_window_layers"], 28);
  EXPECT_EQ(out["torch_dtype"], "float32");  // the published file says bfloat16: ours are fp32 weights
  EXPECT_FALSE(out.contains("transformers_version"));
  EXPECT_TRUE(out["architectures"].is_array());
  EXPECT_EQ(out["architectures"].size(), 1u);
  EXPECT_EQ(out["hidden_act"], "silu");
  EXPECT_EQ(out["use_sliding_window"], false);
  EXPECT_TRUE(out["rope_scaling"].is_null());
  // A MoE original exported as the dense model it became keeps no expert key.
  Json moe = qwen3_30b_a3b();
  ModelConfig dense = parse(moe).model;
  dense.moe_experts = 0;
  const Json as_dense = hf_config_json(dense, "Qwen3ForCausalLM", moe, "bfloat16");
  for (const char* key : {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "mlp_only_layers"})
    EXPECT_FALSE(as_dense.contains(key)) << key;
  Json typed = qwen3_0_6b();  // newer configs list one attention type per layer: it follows n_layers
  typed["layer_types"] = Json::array();
  for (int i = 0; i < 28; ++i) typed["layer_types"].push_back("full_attention");
  ModelConfig shorter = parse(typed).model;
  shorter.n_layers = 3;
  EXPECT_EQ(hf_config_json(shorter, "Qwen3ForCausalLM", typed, "bfloat16")["layer_types"].size(), 3u);
}

TEST(HfConfigWrite, EveryArchitectureKeyIsWritten) {
  ModelConfig moe;
  moe.qk_norm = true;
  moe.moe_experts = 4;
  const Json q = hf_config_json(moe, infer_hf_architecture(moe), Json::object(), "bfloat16");
  for (const char* key :
       {"architectures", "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "num_key_value_heads", "head_dim", "intermediate_size", "max_position_embeddings", "rope_theta",
        "rope_scaling", "rms_norm_eps", "tie_word_embeddings", "attention_bias", "hidden_act", "use_sliding_window",
        "num_experts", "num_experts_per_tok", "moe_intermediate_size", "norm_topk_prob", "decoder_sparse_step",
        "mlp_only_layers", "router_aux_loss_coef", "torch_dtype"})
    EXPECT_TRUE(q.contains(key)) << key;
  EXPECT_EQ(q["model_type"], "qwen3_moe");
  EXPECT_EQ(q["moe_intermediate_size"], moe.d_ff);  // moe_d_ff 0: d_ff
  EXPECT_TRUE(q["mlp_only_layers"].is_array());
  const Json llama = hf_config_json(ModelConfig{}, "LlamaForCausalLM", Json::object(), "float32");
  EXPECT_EQ(llama["model_type"], "llama");
  EXPECT_EQ(llama["mlp_bias"], false);
  EXPECT_FALSE(llama.contains("num_experts"));
  EXPECT_FALSE(llama.contains("use_sliding_window"));  // not a LlamaConfig key
}

TEST(HfConfigWrite, FlywheelMadeModelsRoundTrip) {
  std::vector<ModelConfig> models(5);
  models[1].qk_norm = true;  // Qwen3, explicit head_dim unlike d_model / n_heads
  models[1].head_dim = 32;
  models[1].tie_embeddings = true;
  models[2].attention_bias = true;  // Llama-3 with llama3 RoPE and biases
  models[2].rope_scaling = "llama3";
  models[2].rope_factor = 32;
  models[2].rope_theta = 500000;
  models[2].norm_eps = 1e-6;
  models[3].qk_norm = true;  // Qwen3-MoE with dense layers by both rules
  models[3].n_layers = 6;
  models[3].moe_experts = 8;
  models[3].moe_top_k = 2;
  models[3].moe_d_ff = 48;
  models[3].moe_normalize_topk = false;
  models[3].moe_decoder_sparse_step = 2;
  models[3].moe_mlp_only_layers = {3};
  models[3].moe_aux_loss_coef = 0.02;
  models[4] = models[3];  // moe_d_ff 0: experts as wide as d_ff
  models[4].moe_d_ff = 0;
  models[4].moe_decoder_sparse_step = 1;
  models[4].moe_mlp_only_layers = {};
  const char* expected[] = {"LlamaForCausalLM", "Qwen3ForCausalLM", "LlamaForCausalLM", "Qwen3MoeForCausalLM",
                            "Qwen3MoeForCausalLM"};
  for (size_t i = 0; i < models.size(); ++i) {
    const std::string architecture = infer_hf_architecture(models[i]);
    EXPECT_EQ(architecture, expected[i]) << i;
    const HfModelConfig back = round_trip(models[i], architecture, Json::object());
    EXPECT_EQ(back.architecture, architecture);
    expect_same_architecture(models[i], back.model, "Flywheel model " + std::to_string(i));
  }
}

// The message of the InputError `f` throws ("" when it does not).
template <typename F>
std::string refusal_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(HfConfigWrite, WhatHuggingFaceCannotExpressIsRefusedNamingTheKey) {
  ModelConfig shared;
  shared.qk_norm = true;
  shared.moe_experts = 4;
  shared.moe_shared_expert = true;
  ModelConfig moe_without_norm = shared;
  moe_without_norm.qk_norm = false;
  moe_without_norm.moe_shared_expert = false;
  ModelConfig moe = shared;
  moe.moe_shared_expert = false;
  ModelConfig qwen3;
  qwen3.qk_norm = true;
  const Json none = Json::object();
  const std::pair<std::string, std::string> cases[] = {
      {refusal_of([&] { infer_hf_architecture(shared); }), "model.moe_shared_expert = true"},
      {refusal_of([&] { hf_config_json(shared, "Qwen3MoeForCausalLM", none, "float32"); }),
       "model.moe_shared_expert = true cannot be exported as Qwen3MoeForCausalLM"},
      {refusal_of([&] { infer_hf_architecture(moe_without_norm); }), "with model.qk_norm = false has no"},
      {refusal_of([&] { hf_config_json(qwen3, "LlamaForCausalLM", none, "float32"); }),
       "model.qk_norm = true cannot be exported as LlamaForCausalLM"},
      {refusal_of([&] { hf_config_json(ModelConfig{}, "Qwen3ForCausalLM", none, "float32"); }),
       "model.qk_norm = false cannot be exported as Qwen3ForCausalLM"},
      {refusal_of([&] { hf_config_json(moe, "Qwen3ForCausalLM", none, "float32"); }),
       "model.moe_experts = 4 cannot be exported as Qwen3ForCausalLM"},
      {refusal_of([&] { hf_config_json(qwen3, "Qwen3MoeForCausalLM", none, "float32"); }),
       "model.moe_experts = 0 cannot be exported as Qwen3MoeForCausalLM"},
      {refusal_of([&] { hf_config_json(qwen3, "MistralForCausalLM", none, "float32"); }),
       "architecture MistralForCausalLM cannot be exported (supported: Qwen3ForCausalLM"},
  };
  for (const auto& [message, expected] : cases) EXPECT_NE(message.find(expected), std::string::npos) << message;
}

}  // namespace
}  // namespace flywheel
