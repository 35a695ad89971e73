// Writes a dump for tests/reference/torch_reference.py: the model's weights (from a shape file,
// with a larger init so gradients are far from zero; or, with --model.from_hf=DIR, a Hugging Face
// model imported as `flywheel train` imports it), a random batch, and what the C++ model computes
// for it: logits, losses and every parameter's gradient.
//
//   dump_model --shape FILE --out DIR [--rows R] [--seq T] [--section.key=value ...]
//
// Format: DIR/manifest.json {"config": {...}, "tensors": {name: {dtype, shape, offset}}} and
// DIR/tensors.bin (raw little-endian, row-major).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "launch/command_line.h"
#include "launch/shape.h"
#include "model/transformer.h"
#include "train/hf_import.h"

using namespace flywheel;

namespace {

class DumpWriter {
 public:
  template <typename T>
  void add(const std::string& name, const char* dtype, std::vector<int64_t> shape, const T* data, int64_t count) {
    tensors_[name] = {{"dtype", dtype}, {"shape", shape}, {"offset", blob_.size()}};
    const auto* bytes = reinterpret_cast<const char*>(data);
    blob_.insert(blob_.end(), bytes, bytes + count * sizeof(T));
  }
  void write(const std::string& dir, const nlohmann::json& config) const {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/manifest.json") << nlohmann::json{{"config", config}, {"tensors", tensors_}}.dump(1);
    std::ofstream(dir + "/tensors.bin", std::ios::binary).write(blob_.data(), static_cast<std::streamsize>(blob_.size()));
  }

 private:
  nlohmann::json tensors_ = nlohmann::json::object();
  std::vector<char> blob_;
};

// HF's rope_scaling dict, or null.
nlohmann::json rope_scaling_json(const ModelConfig& m) {
  if (!m.llama3_rope()) return nullptr;
  return {{"rope_type", "llama3"},
          {"factor", m.rope_factor},
          {"low_freq_factor", m.rope_low_freq_factor},
          {"high_freq_factor", m.rope_high_freq_factor},
          {"original_max_position_embeddings", m.rope_original_max_positions}};
}

// [lora] in the reference's terms (PEFT LoraConfig: r, lora_alpha, use_rslora, target kinds), or null.
nlohmann::json lora_json(const LoraConfig& lora) {
  if (!lora.enabled()) return nullptr;
  return {{"rank", lora.rank}, {"alpha", lora.alpha}, {"use_rslora", lora.use_rslora}, {"targets", lora.targets}};
}

nlohmann::json config_json(const ModelConfig& m) {
  return {{"vocab_size", m.vocab_size},
          {"d_model", m.d_model},
          {"n_layers", m.n_layers},
          {"n_heads", m.n_heads},
          {"n_kv_heads", m.n_kv_heads},
          {"head_dim", m.resolved_head_dim()},
          {"d_ff", m.d_ff},
          {"rope_theta", m.rope_theta},
          {"norm_eps", m.norm_eps},
          {"tie_embeddings", m.tie_embeddings},
          {"moe_experts", m.moe_experts},
          {"moe_top_k", m.moe_top_k},
          {"moe_d_ff", m.resolved_moe_d_ff()},
          {"moe_shared_expert", m.moe_shared_expert},
          {"moe_normalize_topk", m.moe_normalize_topk},
          {"moe_aux_loss_coef", m.moe_aux_loss_coef},
          {"qk_norm", m.qk_norm},
          {"attention_bias", m.attention_bias},
          {"rope_scaling", rope_scaling_json(m)},
          {"moe_decoder_sparse_step", m.moe_decoder_sparse_step},
          {"moe_mlp_only_layers", m.moe_mlp_only_layers},
          {"lora", lora_json(m.lora)}};
}

// Biases start at 0, q/k norm gains at 1 and LoRA B matrices at 0, where a forward that ignored them would
// still match (and an adapter's A would get no gradient): give them random values (bias and LoRA B
// N(0, 0.1^2), gain 1 + N(0, 0.2^2)) so their use shows.
void perturb_zero_and_unit_vectors(ParameterSet& params, uint64_t seed) {
  for (size_t id = 0; id < params.list().size(); ++id) {
    const ParamInfo& p = params.info(static_cast<int>(id));
    const bool bias = p.name.ends_with(".bias");
    const bool head_norm = p.name.ends_with("self_attn.q_norm.weight") || p.name.ends_with("self_attn.k_norm.weight");
    const bool lora_b = p.name.ends_with(".lora_B.weight");
    if (!bias && !head_norm && !lora_b) continue;
    const double mean = head_norm ? 1.0 : 0.0, std_dev = head_norm ? 0.2 : 0.1;
    CounterRng rng(RngKey{seed, RngPurpose::kDataShuffle, 7 + id, 0});
    float* v = params.value(static_cast<int>(id));
    for (int64_t i = 0; i < p.numel; ++i) v[i] = static_cast<float>(mean + std_dev * rng.normal());
  }
}

CommandLine command_line() {
  CommandLine command("dump_model", "Dumps a model, a batch and what the C++ model computes for torch_reference.py.");
  command.required<std::string>("shape", "FILE", "training shape (configs/shapes/*.ini)")
      .required<std::string>("out", "DIR", "dump directory")
      .option<int64_t>("rows", "R", "rows of the batch", "2")
      .option<int64_t>("seq", "T", "tokens per row", "16")
      .shape_overrides();
  return command;
}

}  // namespace

int main(int argc, char** argv) {
  const CommandLine command = command_line();
  ParsedArgs args;
  try {
    args = command.parse(argc, argv);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "dump_model: usage error: %s (see `dump_model --help`)\n", e.what());
    return 2;
  }
  if (args.help()) {
    std::fputs(command.help().c_str(), stdout);
    return 0;
  }
  const std::string out_dir = args.get<std::string>("out");
  const int64_t rows = args.get<int64_t>("rows"), seq = args.get<int64_t>("seq");
  try {
    const Shape shape = load_shape(args.get<std::string>("shape"), args.overrides());
    Transformer model(shape.model);
    if (shape.train.from_hf.empty()) {
      model.initialize(shape.train.seed);
      perturb_zero_and_unit_vectors(model.params(), shape.train.seed);
    } else {  // --model.from_hf=DIR: the Hugging Face import's checks and reads (train/hf_import.h)
      const HfWeights weights(shape.train.from_hf, model.params(), shape.model.tie_embeddings);
      model.initialize(shape.train.seed);  // the adapters (LoRA); every base weight is then read
      for (const ParamInfo& p : model.params().list())
        if (!p.adapter) weights.read_rows(p, 0, p.shape[0], model.params().value(model.params().find(p.name)));
    }
    const int64_t n = rows * seq, vocab = shape.model.vocab_size;

    // A random batch with about a quarter of the positions masked out of the loss.
    CounterRng rng(RngKey{shape.train.seed, RngPurpose::kDataShuffle, 99, 0});
    std::vector<int32_t> tokens(n), targets(n);
    std::vector<float> mask(n), ce_weight(n);
    for (int64_t i = 0; i < n; ++i) {
      tokens[i] = static_cast<int32_t>(rng.below(vocab));
      targets[i] = static_cast<int32_t>(rng.below(vocab));
      mask[i] = rng.uniform() < 0.75 ? 1.0f : 0.0f;
    }
    mask[0] = 1.0f;
    double mask_sum = 0;
    for (float m : mask) mask_sum += m;
    for (int64_t i = 0; i < n; ++i) ce_weight[i] = static_cast<float>(mask[i] / mask_sum);

    const double coef = shape.model.moe_aux_loss_coef;
    const MicroBatchResult r =
        model.forward_backward(tokens.data(), targets.data(), ce_weight.data(), rows, seq, shape.model.is_moe() ? coef : 0.0);
    std::vector<float> logits(n * vocab);
    model.forward_logits(tokens.data(), rows, seq, logits.data());

    DumpWriter dump;
    for (size_t id = 0; id < model.params().list().size(); ++id) {
      const ParamInfo& p = model.params().info(static_cast<int>(id));
      dump.add(p.name, "f32", p.shape, model.params().value(static_cast<int>(id)), p.numel);
      // A frozen base weight (LoRA) has no gradient: the reference checks that none is reported.
      if (const float* grad = model.params().grad(static_cast<int>(id)))
        dump.add("grad." + p.name, "f32", p.shape, grad, p.numel);
    }
    dump.add("batch.tokens", "i32", {rows, seq}, tokens.data(), n);
    dump.add("batch.targets", "i32", {rows, seq}, targets.data(), n);
    dump.add("batch.loss_mask", "f32", {rows, seq}, mask.data(), n);
    dump.add("out.logits", "f32", {rows, seq, vocab}, logits.data(), n * vocab);
    const float ce = static_cast<float>(r.ce_loss);
    const float aux = static_cast<float>(r.aux_loss);
    const float loss = static_cast<float>(r.ce_loss + (shape.model.is_moe() ? coef * r.aux_loss : 0.0));
    dump.add("out.ce_loss", "f32", {1}, &ce, 1);
    dump.add("out.loss", "f32", {1}, &loss, 1);
    if (shape.model.is_moe()) dump.add("out.aux_loss", "f32", {1}, &aux, 1);
    dump.write(out_dir, config_json(shape.model));
    std::printf("dump_model: wrote %s (%zu parameters, loss %.6f)\n", out_dir.c_str(), model.params().list().size(),
                loss);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dump_model: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
