// parse_hf_config on the config.json of published models (values as the Hugging Face hub lists them
// for Qwen/Qwen3-0.6B, meta-llama/Llama-3.2-1B and Qwen/Qwen3-30B-A3B), then one defect at a time.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace flywheel
