// LoRA (model/lora_config.h): the [lora] keys' checks, the adapters a target set registers (PEFT names and shapes),
// their initialisation (A ~ U(+-1/sqrt(in)), B = 0, so a fresh adapter leaves the base's outputs bit for bit), the
// frozen base (no gradient anywhere but the adapters), and switching adapters off giving back the base exactly.
// Gradients against PyTorch in PEFT's conventions: reference.torch_parity.lora-* (tests/reference).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/transformer.h"

namespace flywheel {
namespace {

ModelConfig dense(int64_t rank, const std::string& targets = "all-linear") {
  ModelConfig c;
  c.vocab_size = 53;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 40;
  c.max_seq_len = 16;
  c.init_std = 0.2;
  c.lora.rank = rank;
  c.lora.alpha = 8;
  c.lora.targets = targets;
  return c;
}

ModelConfig moe(int64_t rank, const std::string& targets) {
  ModelConfig c = dense(rank, targets);
  c.moe_experts = 4;
  c.moe_top_k = 2;
  c.moe_d_ff = 24;
  c.moe_shared_expert = true;
  c.moe_decoder_sparse_step = 2;  // layer 0 dense, layer 1 MoE
  return c;
}

std::string input_error(const ModelConfig& c) {
  try {
    c.validate();
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<std::string> adapter_names(const Transformer& model) {
  std::vector<std::string> names;
  for (const ParamInfo& p : model.params().list())
    if (p.adapter) names.push_back(p.name);
  return names;
}

std::vector<float> logits_of(Transformer& model) {
  const int64_t rows = 2, seq = 7, vocab = model.config().vocab_size;
  std::vector<int32_t> tokens(rows * seq);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((7 * i + 2) % vocab);
  std::vector<float> logits(rows * seq * vocab);
  model.forward_logits(tokens.data(), rows, seq, logits.data());
  return logits;
}

TEST(Lora, ScaleIsAlphaOverRankOrOverItsRootWithRsLora) {
  LoraConfig lora;
  lora.rank = 16;
  lora.alpha = 32;
  EXPECT_FLOAT_EQ(lora.scale(), 2.0f);
  lora.use_rslora = true;
  EXPECT_FLOAT_EQ(lora.scale(), 8.0f);
}

TEST(Lora, BadKeysAreInputErrorsNamingTheKeyAndWhatIsAllowed) {
  EXPECT_NO_THROW(dense(4).validate());
  EXPECT_NO_THROW(dense(0).validate());  // no adapters
  EXPECT_NE(input_error(dense(-1)).find("lora.rank = -1: must be >= 1"), std::string::npos);
  EXPECT_NE(input_error(dense(4, "q,qkv")).find("unknown target 'qkv'; allowed: a comma-separated list of q, k, v"),
            std::string::npos);
  EXPECT_NE(input_error(dense(0, "qkv")).find("unknown target 'qkv'"), std::string::npos);  // a typo, even unused
  // q: [n_heads * hd, d] = [32, 32]; k and v: [n_kv * hd, d] = [16, 32]: rank 17 fits q but not k.
  EXPECT_NO_THROW(dense(17, "q").validate());
  EXPECT_NE(input_error(dense(17, "k")).find("lora.rank = 17 is larger than the smaller side (16) of the k matrices"),
            std::string::npos);
  EXPECT_NE(input_error(dense(4, "experts")).find("adapts no matrix of this model (dense: no experts)"),
            std::string::npos);
  ModelConfig c = dense(4);
  c.lora.dropout = 0.1;
  EXPECT_NE(input_error(c).find("lora.dropout = 0.1: not supported yet; allowed: 0"), std::string::npos);
  c = dense(4);
  c.lora.alpha = 0;
  EXPECT_NE(input_error(c).find("lora.alpha = 0: must be a finite number > 0"), std::string::npos);
}

TEST(Lora, TargetsRegisterPeftNamedAdaptersBesideTheirLayers) {
  const Transformer qv(dense(4, "q_proj, v"));
  EXPECT_EQ(adapter_names(qv), (std::vector<std::string>{
                                   "model.layers.0.self_attn.q_proj.lora_A.weight",
                                   "model.layers.0.self_attn.q_proj.lora_B.weight",
                                   "model.layers.0.self_attn.v_proj.lora_A.weight",
                                   "model.layers.0.self_attn.v_proj.lora_B.weight",
                                   "model.layers.1.self_attn.q_proj.lora_A.weight",
                                   "model.layers.1.self_attn.q_proj.lora_B.weight",
                                   "model.layers.1.self_attn.v_proj.lora_A.weight",
                                   "model.layers.1.self_attn.v_proj.lora_B.weight",
                               }));
  const ParameterSet& p = qv.params();
  EXPECT_EQ(p.info(p.find("model.layers.0.self_attn.v_proj.lora_A.weight")).shape, (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(p.info(p.find("model.layers.0.self_attn.v_proj.lora_B.weight")).shape, (std::vector<int64_t>{16, 4}));

  // MoE: "experts" adapts every routed expert (an expert unit of its own, sharded like the experts), "gate" the
  // dense layer's and the shared expert's gate_proj; the router (mlp.gate) never gets one.
  const ModelConfig mc = moe(2, "gate,experts");
  const Transformer m(mc);
  int64_t adapter_elements = 0;
  for (const ParamInfo& info : m.params().list()) {
    if (!info.adapter) continue;
    adapter_elements += info.numel;
    EXPECT_EQ(info.name.find("mlp.gate.lora"), std::string::npos) << info.name;
    const bool expert = info.name.find(".mlp.experts.") != std::string::npos;
    EXPECT_EQ(m.params().units()[info.unit].experts, expert) << info.name;
    EXPECT_EQ(info.expert >= 0, expert) << info.name;
    EXPECT_TRUE(m.params().units()[info.unit].trainable) << info.name;
  }
  EXPECT_GT(m.params().find("model.layers.0.mlp.gate_proj.lora_A.weight"), 0);
  EXPECT_GT(m.params().find("model.layers.1.mlp.shared_expert.gate_proj.lora_B.weight"), 0);
  EXPECT_GT(m.params().find("model.layers.1.mlp.experts.3.down_proj.lora_A.weight"), 0);
  EXPECT_LT(m.params().find("model.layers.1.mlp.shared_expert.up_proj.lora_A.weight"), 0);
  EXPECT_EQ(adapter_elements, mc.lora.adapter_params(mc));
  for (const ParameterUnit& u : m.params().units())
    EXPECT_EQ(u.trainable, u.name.ends_with(".lora")) << u.name;  // the base is frozen
}

TEST(Lora, FreshAdaptersLeaveTheBaseOutputsBitForBitAndOffGivesTheBaseBack) {
  Transformer base(dense(0));
  base.initialize(5);
  Transformer lora(dense(4));
  lora.initialize(5);
  const ParameterSet& p = lora.params();
  for (size_t id = 0; id < p.list().size(); ++id) {
    const ParamInfo& info = p.info(static_cast<int>(id));
    const float* v = p.value(static_cast<int>(id));
    if (info.name.ends_with("lora_B.weight")) {
      for (int64_t i = 0; i < info.numel; ++i) ASSERT_EQ(v[i], 0.0f) << info.name;
    } else if (info.name.ends_with("lora_A.weight")) {  // PEFT: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(in))
      const double bound = 1.0 / std::sqrt(static_cast<double>(info.shape[1]));
      double largest = 0;
      for (int64_t i = 0; i < info.numel; ++i) largest = std::max(largest, std::abs(static_cast<double>(v[i])));
      EXPECT_LE(largest, bound) << info.name;
      EXPECT_GT(largest, 0.9 * bound) << info.name;
    }
  }
  const std::vector<float> from_base = logits_of(base);
  EXPECT_EQ(logits_of(lora), from_base);  // B = 0: the adapters add exactly nothing
  // A trained adapter (B != 0) changes the outputs; switched off, the model is its base again.
  for (const ParamInfo& info : p.list())
    if (info.name.ends_with("lora_B.weight")) {
      float* b = lora.params().value(lora.params().find(info.name));
      for (int64_t i = 0; i < info.numel; ++i) b[i] = 0.05f * static_cast<float>((i % 7) - 3);
    }
  EXPECT_NE(logits_of(lora), from_base);
  lora.set_adapters_enabled(false);
  EXPECT_EQ(logits_of(lora), from_base);
}

TEST(Lora, OnlyTheAdaptersGetGradients) {
  Transformer model(moe(2, "all-linear"));
  model.initialize(3);
  const int64_t rows = 2, seq = 6, n = rows * seq;
  std::vector<int32_t> tokens(n), targets(n);
  std::vector<float> weight(n, 1.0f / static_cast<float>(n));
  for (int64_t i = 0; i < n; ++i) {
    tokens[i] = static_cast<int32_t>((5 * i + 1) % 53);
    targets[i] = static_cast<int32_t>((3 * i + 2) % 53);
  }
  model.forward_backward(tokens.data(), targets.data(), weight.data(), rows, seq, 0.01);
  double adapter_grad = 0;
  for (size_t id = 0; id < model.params().list().size(); ++id) {
    const ParamInfo& info = model.params().info(static_cast<int>(id));
    const float* g = model.params().grad(static_cast<int>(id));
    EXPECT_EQ(g != nullptr, info.adapter) << info.name;
    if (g)
      for (int64_t i = 0; i < info.numel; ++i) adapter_grad += std::abs(g[i]);
  }
  EXPECT_GT(adapter_grad, 0.0);  // B = 0 still passes a gradient to B (dB = s dy^T (x A^T))
}

}  // namespace
}  // namespace flywheel
