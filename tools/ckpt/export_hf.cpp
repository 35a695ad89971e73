// flywheel-ckpt export --format hf: one committed step as a directory that Hugging Face transformers'
// from_pretrained loads:
//
//   config.json                   hf_config_json (model/hf_config.h) of the step's model: the architecture
//                                 and the other keys of RUN/hf/config.json when the run was imported
//                                 (--model.from_hf copies the source model's files there), else inferred
//   model.safetensors             the weights (ckpt/safetensors_index.h write_model), or shards
//   model.safetensors.index.json    + index when they exceed --max-shard-size
//   generation_config.json        RUN/hf's copy, else {"_from_model_config": true} with the config's
//                                 bos / eos / pad ids, as transformers' GenerationConfig.from_model_config
//   tokenizer files               copied from RUN/hf (none for a model Flywheel initialised itself)
//
// A LoRA run exports with --merge: every adapted weight becomes W + s B A (the product and the sum in float64,
// rounded once to fp32, as PEFT's merge_and_unload computes W + scaling * B @ A), the adapters are left out, and
// the directory is the base architecture a plain from_pretrained loads. (--format peft writes the adapter.)
//
// Everything is written into OUT.tmp-<pid> (ckpt/temp_dir.h) and renamed into place at the end.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ckpt/durable_fs.h"
#include "ckpt/safetensors_index.h"
#include "ckpt/temp_dir.h"
#include "common.h"
#include "data/tokenizer.h"
#include "export.h"
#include "model/hf_config.h"
#include "shape_text.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;
using Json = nlohmann::json;

// The files --model.from_hf copies beside config.json and generation_config.json (whichever exist),
// plus the two newer transformers save beside them; copied byte for byte.
constexpr const char* kTokenizerFiles[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt",     "added_tokens.json",     "chat_template.jinja"};

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot read ", path.string());
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("reading ", path.string(), " failed");
  return text.str();
}

// Where config.json's architecture and non-architecture keys come from.
struct ConfigSource {
  std::string architecture;
  Json original = Json::object();
  bool imported = false;  // from RUN/hf
};

ConfigSource config_source(const std::string& run_dir, const ModelConfig& model) {
  ConfigSource source;
  const fs::path path = fs::path(run_dir) / "hf" / "config.json";
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    source.architecture = infer_hf_architecture(model);
    // Flywheel's own models read the byte tokenizer (data/tokenizer.h): its special ids, when the
    // vocabulary holds them, are what generate() needs.
    if (model.vocab_size > ByteTokenizer::kPad) {
      source.original["bos_token_id"] = ByteTokenizer::kBos;
      source.original["eos_token_id"] = ByteTokenizer::kEos;
      source.original["pad_token_id"] = ByteTokenizer::kPad;
    }
    return source;
  }
  const std::string text = read_text(path);
  source.architecture = parse_hf_config(text, path.string()).architecture;  // every check of the import
  source.original = Json::parse(text);
  source.imported = true;
  return source;
}

// W + s B A of one adapted weight W [out, in] (the rebuilt base's), with A [r, in], B [out, r] (the step's).
std::vector<float> merged(StepReader& reader, const float* base_w, const std::vector<int64_t>& shape,
                          const std::string& module, double s) {
  const int64_t out = shape[0], in = shape[1], r = reader.global_shape("weight", module + ".lora_A.weight")[0];
  std::vector<float> w(base_w, base_w + out * in);
  const std::vector<float> a = reader.read("weight", module + ".lora_A.weight");
  const std::vector<float> b = reader.read("weight", module + ".lora_B.weight");
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) {
      double delta = 0;
      for (int64_t k = 0; k < r; ++k) delta += static_cast<double>(b[o * r + k]) * a[k * in + i];
      w[o * in + i] = static_cast<float>(static_cast<double>(w[o * in + i]) + s * delta);
    }
  return w;
}

// The weights to write: all of the step's, or (merge, a LoRA run) the rebuilt base's with every adapter folded in.
std::vector<safetensors::Source> export_sources(StepReader& reader, const ModelConfig& model, const Transformer* base) {
  if (!base) return weight_sources(reader);
  std::vector<safetensors::Source> sources = base_sources(*base);
  const double s = model.lora.scale();
  for (safetensors::Source& source : sources) {
    const std::string module = source.name.substr(0, source.name.size() - std::string(".weight").size());
    if (!reader.has("weight", module + ".lora_A.weight")) continue;
    const ParameterSet& params = base->params();
    const float* w = params.value(params.find(source.name));
    source.values = [&reader, w, shape = source.shape, module, s] { return merged(reader, w, shape, module, s); };
  }
  return sources;
}

}  // namespace

// The step's model from its recorded shape; the hf format cannot do without it (config.json).
ModelConfig step_model(StepReader& reader) {
  const std::string origin = reader.check().dir + "/state.h5 shape_text";
  Shape shape;
  try {
    shape = parse_shape_text(reader.record().state.shape_text, origin);
  } catch (const std::exception& e) {
    fail("--format hf needs the model of step ", reader.check().step,
         ", but its recorded shape does not parse: ", without_source_location(e.what()));
  }
  std::map<std::string, std::vector<int64_t>> weights;
  for (const std::string& name : reader.names("weight")) weights[name] = reader.global_shape("weight", name);
  const std::vector<std::string> problems = model_mismatches(shape.model, weights);
  if (!problems.empty())
    fail("step ", reader.check().step, "'s tensors do not match the model its shape text describes (",
         model_summary(shape.model), "): ", problems.front(), problems.size() > 1 ? " (and more)" : "",
         "; config.json would not describe these weights (flywheel-ckpt reshard --set can correct the shape)");
  return shape.model;
}

namespace {

// transformers' GenerationConfig.from_model_config keeps these ids of the model config.
Json generation_config(const Json& config) {
  Json out = Json::object();
  out["_from_model_config"] = true;
  for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"})
    if (config.contains(key) && !config[key].is_null()) out[key] = config[key];
  return out;
}

void write_json(const fs::path& path, const Json& json) { replace_file_atomically(path.string(), json.dump(2) + "\n"); }

struct Written {
  safetensors::ModelWrite weights;
  size_t tensors = 0;
  std::vector<std::string> copied;  // from RUN/hf
  bool generation_copied = false;
};

Written write_directory(const HfExportRequest& request, StepReader& reader, const ModelConfig& model,
                        const Transformer* base, const ConfigSource& source, const Json& config, const fs::path& dir) {
  Written written;
  const std::vector<safetensors::Source> sources = export_sources(reader, model, base);
  written.tensors = sources.size();
  uint64_t total = 0;
  for (const safetensors::Source& s : sources) total += safetensors::stored_bytes(s, request.dtype);
  ProgressMeter meter("export: writing", total, request.style);
  safetensors::WriteOptions options;
  options.dtype = request.dtype;
  options.metadata = export_metadata(reader, model.tie_embeddings, model_summary(model));
  if (request.merge)
    options.metadata["flywheel_lora_merged"] =
        detail::concat("rank ", model.lora.rank, ", alpha ", model.lora.alpha, ", scale ", model.lora.scale(),
                       ", targets ", model.lora.targets, ": W + scale * B A");
  options.on_bytes = [&meter](uint64_t bytes) { meter.add(bytes); };
  written.weights = safetensors::write_model(dir.string(), sources, options, request.max_shard_bytes);
  meter.finish();
  write_json(dir / "config.json", config);
  const fs::path hf = fs::path(request.run_dir) / "hf";
  std::error_code ec;
  if (source.imported && fs::exists(hf / "generation_config.json", ec)) {
    replace_file_atomically((dir / "generation_config.json").string(), read_text(hf / "generation_config.json"));
    written.generation_copied = true;
  } else {
    write_json(dir / "generation_config.json", generation_config(config));
  }
  if (!source.imported) return written;
  for (const char* name : kTokenizerFiles) {
    if (!fs::exists(hf / name, ec)) continue;
    replace_file_atomically((dir / name).string(), read_text(hf / name));
    written.copied.push_back(name);
  }
  return written;
}

void print_summary(const HfExportRequest& request, const StepReader& reader, const ModelConfig& model,
                   const ConfigSource& source, const Written& written) {
  std::cout << "exported step " << reader.check().step << " (" << reader.check().dir << ") as " << source.architecture
            << " to " << request.out << "\n";
  const size_t shards = written.weights.files.size() > 1 ? written.weights.files.size() - 1 : 1;
  std::cout << "  weights: " << written.tensors << " tensors" << (request.merge ? " (LoRA adapters merged)" : "")
            << ", " << format_bytes(written.weights.tensor_bytes) << " "
            << (request.dtype == DType::kBF16 ? "BF16" : "F32") << ", "
            << (shards > 1 ? std::to_string(shards) + " shards + model.safetensors.index.json"
                           : std::string("model.safetensors"))
            << (model.tie_embeddings ? "; tied embeddings: no lm_head.weight" : "") << "\n";
  const fs::path hf = fs::path(request.run_dir) / "hf";
  std::cout << "  config.json: " << (source.imported ? "keys of " + (hf / "config.json").string() : "inferred")
            << "; generation_config.json: "
            << (written.generation_copied ? "copied" : "written (_from_model_config, bos/eos/pad ids)") << "\n";
  if (!source.imported) {
    std::cout << "  tokenizer: none written: the model was initialised by Flywheel and reads its byte tokenizer, "
                 "which has no Hugging Face files (ids 0-255 are bytes, 256 BOS, 257 EOS, 258 PAD)\n";
    return;
  }
  std::string names;
  for (const std::string& name : written.copied) names += (names.empty() ? "" : ", ") + name;
  std::cout << "  tokenizer: " << (names.empty() ? "none in " + hf.string() : "copied " + names) << "\n";
}

}  // namespace

void check_out_dir(const HfExportRequest& request, const std::string& marker) {
  const std::string& out = request.out;
  std::error_code ec;
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    fail("--out ", out, ": directory ", parent.string(), " does not exist");
  if (!fs::exists(out, ec)) return;
  if (!fs::is_directory(out, ec)) fail("--out ", out, " exists and is not a directory (", marker, " goes in one)");
  for (const fs::path& source : {fs::path(request.run_dir), fs::path(request.run_dir) / "hf"})
    if (fs::exists(source, ec) && fs::equivalent(out, source, ec))
      fail("--out ", out, " is ", source.string(), ", which the export reads; choose another directory");
  if (fs::is_empty(out, ec)) return;
  if (!request.force)
    fail("--out ", out, " exists and is not empty; pass --force to replace it, or choose a new directory");
  if (!fs::exists(fs::path(out) / marker, ec))
    fail("--force: refusing to replace ", out, ": it has no ", marker, ", so it is not a directory this export writes",
         " (only those are replaced)");
}

int export_hf(const HfExportRequest& request) {
  const int64_t step = choose_step(request.run_dir, request.step);
  StepReader reader = open_verified_step(request.run_dir, step, "export: verifying", request.style);
  const ModelConfig model = step_model(reader);  // its tensors match the model, lm_head.weight (untied) included
  if (model.lora.enabled() && !request.merge)
    fail("step ", step, " is a LoRA run (rank ", model.lora.rank, " on ", model.lora.targets,
         "): --format hf --merge writes the merged model (W + s B A), --format peft the adapter alone");
  if (!model.lora.enabled() && request.merge) fail("--merge: step ", step, " has no LoRA adapters to merge");
  std::unique_ptr<Transformer> base;  // a LoRA run's base: its checkpoints name it, the merge needs it
  if (request.merge)
    base = rebuilt_lora_base(reader, parse_shape_text(reader.record().state.shape_text, reader.check().dir));
  // config.json first, in memory: a model HF cannot express fails before anything is written.
  ConfigSource source;
  Json config;
  try {
    source = config_source(request.run_dir, model);
    config = hf_config_json(model, source.architecture, source.original,
                            request.dtype == DType::kBF16 ? "bfloat16" : "float32");
  } catch (const InputError& e) {
    fail("--format hf: ", e.what(), " (--format safetensors still exports the weights, without a config.json)");
  }
  TemporaryDirectory dir(request.out);
  const Written written = write_directory(request, reader, model, base.get(), source, config, dir.path());
  dir.commit(request.force);
  print_summary(request, reader, model, source, written);
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
