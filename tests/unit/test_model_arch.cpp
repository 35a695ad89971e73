// The Hugging Face architecture switches at the model level: which tensors each switch registers
// (names and shapes as HF Qwen3 / Qwen3-MoE / Llama checkpoints store them), the Qwen3-MoE layer
// pattern, parameter counts against the registry, the shape keys, and the input checks naming them.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "launch/shape.h"
#include "model/transformer.h"
#include "test_util.h"

namespace flywheel {
namespace {

using testing::error_message;
using testing::TempDir;

ModelConfig small() {
  ModelConfig c;
  c.vocab_size = 50;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 40;
  c.max_seq_len = 16;
  return c;
}

std::vector<int64_t> shape_of(const Transformer& model, const std::string& name) {
  const int id = model.params().find(name);
  return id < 0 ? std::vector<int64_t>{} : model.params().info(id).shape;
}

int64_t registry_count(const Transformer& model) {
  int64_t sum = 0;
  for (const ParamInfo& p : model.params().list()) sum += p.numel;
  return sum;
}

TEST(ModelArch, QkNormAndAttentionBiasRegisterHfTensors) {
  ModelConfig c = small();
  c.head_dim = 12;  // != d_model / n_heads = 8
  c.qk_norm = true;
  c.attention_bias = true;
  const Transformer model(c, false);
  const std::string p = "model.layers.1.self_attn.";
  EXPECT_EQ(shape_of(model, p + "q_norm.weight"), (std::vector<int64_t>{12}));
  EXPECT_EQ(shape_of(model, p + "k_norm.weight"), (std::vector<int64_t>{12}));
  EXPECT_EQ(shape_of(model, p + "q_proj.bias"), (std::vector<int64_t>{48}));
  EXPECT_EQ(shape_of(model, p + "k_proj.bias"), (std::vector<int64_t>{24}));
  EXPECT_EQ(shape_of(model, p + "v_proj.bias"), (std::vector<int64_t>{24}));
  EXPECT_EQ(shape_of(model, p + "o_proj.bias"), (std::vector<int64_t>{32}));
  EXPECT_EQ(shape_of(model, p + "o_proj.weight"), (std::vector<int64_t>{32, 48}));
  EXPECT_EQ(registry_count(model), c.total_params());
  // Gains start at 1, biases at 0, and neither decays.
  const ParamInfo& bias = model.params().info(model.params().find(p + "q_proj.bias"));
  const ParamInfo& gain = model.params().info(model.params().find(p + "k_norm.weight"));
  EXPECT_EQ(bias.init, ParamInit::kZeros);
  EXPECT_EQ(gain.init, ParamInit::kOnes);
  EXPECT_FALSE(bias.weight_decay);
  EXPECT_FALSE(gain.weight_decay);

  const Transformer plain(small(), false);  // defaults: none of them
  for (const ParamInfo& info : plain.params().list()) {
    EXPECT_EQ(info.name.find(".bias"), std::string::npos) << info.name;
    EXPECT_EQ(info.name.find("q_norm"), std::string::npos) << info.name;
  }
}

TEST(ModelArch, Qwen3MoeLayerPatternMakesOnlyTheChosenLayersSparse) {
  ModelConfig c = small();
  c.n_layers = 6;
  c.moe_experts = 4;
  c.moe_top_k = 2;
  c.moe_d_ff = 16;
  c.moe_decoder_sparse_step = 2;  // (i + 1) % 2 == 0: layers 1, 3, 5
  c.moe_mlp_only_layers = {3};
  c.validate();
  std::vector<int64_t> moe;
  for (int64_t l = 0; l < c.n_layers; ++l)
    if (c.is_moe_layer(l)) moe.push_back(l);
  EXPECT_EQ(moe, (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(c.moe_layer_count(), 2);
  const Transformer model(c, false);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".mlp.";
    const bool sparse = l == 1 || l == 5;
    EXPECT_EQ(model.params().find(p + "gate.weight") >= 0, sparse) << l;
    EXPECT_EQ(model.params().find(p + "experts.3.down_proj.weight") >= 0, sparse) << l;
    const std::vector<int64_t> dense_gate = sparse ? std::vector<int64_t>{} : std::vector<int64_t>{40, 32};
    EXPECT_EQ(shape_of(model, p + "gate_proj.weight"), dense_gate) << l;
  }
  int expert_units = 0;
  for (const ParameterUnit& u : model.params().units()) expert_units += u.experts ? 1 : 0;
  EXPECT_EQ(expert_units, 2);
  EXPECT_EQ(registry_count(model), c.total_params());
  // Defaults (step 1, no list): every layer of an MoE model is sparse, as before.
  ModelConfig all = c;
  all.moe_decoder_sparse_step = 1;
  all.moe_mlp_only_layers.clear();
  EXPECT_EQ(all.moe_layer_count(), 6);
}

// A dense layer of an MoE model trains: loss and gradients are finite and the aux loss averages the
// MoE layers only (a model with one MoE layer reports that layer's aux, about 1 when balanced).
TEST(ModelArch, MixedLayersRunForwardBackwardWithTheAuxOfTheMoeLayers) {
  ModelConfig c = small();
  c.n_layers = 3;
  c.moe_experts = 4;
  c.moe_top_k = 2;
  c.moe_decoder_sparse_step = 3;  // only layer 2
  c.qk_norm = true;
  c.attention_bias = true;
  c.rope_scaling = "llama3";
  c.rope_original_max_positions = 8;
  Transformer model(c);
  model.initialize(5);
  const int64_t rows = 2, seq = 6, n = rows * seq;
  std::vector<int32_t> tokens(n), targets(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = static_cast<int32_t>((7 * i) % c.vocab_size), targets[i] = tokens[i];
  const std::vector<float> weight(n, 1.0f / n);
  const MicroBatchResult r = model.forward_backward(tokens.data(), targets.data(), weight.data(), rows, seq, 0.01);
  EXPECT_TRUE(std::isfinite(r.ce_loss));
  EXPECT_GT(r.aux_loss, 0.5);
  EXPECT_LT(r.aux_loss, 2.5);
  double norm = 0;
  const int q_norm = model.params().find("model.layers.0.self_attn.q_norm.weight");
  for (int64_t i = 0; i < c.resolved_head_dim(); ++i) norm += std::abs(model.params().grad(q_norm)[i]);
  EXPECT_GT(norm, 0.0);
}

TEST(ModelArch, ValidationNamesTheKey) {
  auto message = [](auto edit) {
    ModelConfig c = small();
    edit(c);
    return error_message([&] { c.validate(); });
  };
  EXPECT_NE(message([](ModelConfig& c) { c.rope_scaling = "yarn"; }).find("model.rope_scaling = 'yarn'"),
            std::string::npos);
  auto llama = [](ModelConfig& c) { c.rope_scaling = "llama3"; };
  EXPECT_NE(message([&](ModelConfig& c) { llama(c), c.rope_factor = 0.5; }).find("model.rope_factor = 0.5"),
            std::string::npos);
  EXPECT_NE(message([&](ModelConfig& c) { llama(c), c.rope_high_freq_factor = 1; })
                .find("model.rope_high_freq_factor = 1 must be > model.rope_low_freq_factor = 1"),
            std::string::npos);
  EXPECT_NE(message([&](ModelConfig& c) { llama(c), c.rope_low_freq_factor = 0; }).find("model.rope_low_freq_factor"),
            std::string::npos);
  EXPECT_NE(message([&](ModelConfig& c) { llama(c), c.rope_original_max_positions = 0; })
                .find("model.rope_original_max_positions = 0"),
            std::string::npos);
  EXPECT_NE(message([](ModelConfig& c) { c.moe_decoder_sparse_step = 0; }).find("model.moe_decoder_sparse_step = 0"),
            std::string::npos);
  EXPECT_NE(message([](ModelConfig& c) { c.moe_mlp_only_layers = {2}; })
                .find("model.moe_mlp_only_layers: layer 2 is not in [0, model.n_layers = 2)"),
            std::string::npos);
  EXPECT_NE(message([](ModelConfig& c) { c.moe_mlp_only_layers = {1, 1}; }).find("layer 1 is listed twice"),
            std::string::npos);
  // The four numbers are not read without llama3.
  ModelConfig c = small();
  c.rope_factor = 0.5;
  EXPECT_NO_THROW(c.validate());
}

TEST(ModelArch, ShapeKeysParse) {
  TempDir dir;
  const std::string path = (dir.path / "arch.ini").string();
  std::ofstream(path) << "[model]\nn_layers = 4\nmoe_experts = 4\nmoe_mlp_only_layers = 0, 2\nqk_norm = true\n"
                         "rope_scaling = llama3\nrope_factor = 32\nrope_original_max_positions = 4096\n";
  const Shape shape = load_shape(path, {"--model.attention_bias=true", "--model.moe_decoder_sparse_step=1"});
  EXPECT_EQ(shape.model.moe_mlp_only_layers, (std::vector<int64_t>{0, 2}));
  EXPECT_TRUE(shape.model.qk_norm);
  EXPECT_TRUE(shape.model.attention_bias);
  EXPECT_TRUE(shape.model.llama3_rope());
  EXPECT_EQ(shape.model.rope_factor, 32.0);
  EXPECT_EQ(shape.model.rope_original_max_positions, 4096);
  EXPECT_EQ(shape.model.rope_scaling_params().type, ops::RopeScaling::Type::kLlama3);
  const Shape empty = load_shape(path, {"--model.moe_mlp_only_layers="});
  EXPECT_TRUE(empty.model.moe_mlp_only_layers.empty());
  const std::string bad = error_message([&] { load_shape(path, {"--model.moe_mlp_only_layers=1,x"}); });
  EXPECT_NE(bad.find("moe_mlp_only_layers"), std::string::npos) << bad;
}

}  // namespace
}  // namespace flywheel
