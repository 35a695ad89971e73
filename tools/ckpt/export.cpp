// flywheel-ckpt export: the weights of one step for the world outside Flywheel.
//
// --format safetensors: one Hugging Face safetensors file, written by the library's one safetensors
// writer (ckpt/safetensors.h: header padded to 8 bytes, {"format": "pt"}, tensors in sorted-name
// order, FILE.tmp renamed into place), in F32 or, with --dtype bf16, BF16 rounded to nearest even.
// --format hf: a model directory transformers loads (export_hf.cpp); a LoRA run's with --merge.
// --format peft: a LoRA run's adapter as PEFT saves one (export_peft.cpp).
//
// Our tensor names already are Hugging Face (Llama / Qwen3 / Qwen3-MoE) names. With tied embeddings the
// checkpoint has no lm_head.weight and neither does the file (transformers re-ties it from
// model.embed_tokens.weight); __metadata__ says so. Moments are not exported.
#include <filesystem>
#include <iostream>
#include <map>

#include "byte_size.h"
#include "ckpt/checkpoint_dir.h"
#include "common.h"
#include "export.h"
#include "shape_text.h"
#include "train/lora_base.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

// Streams the sources one tensor at a time into the file.
uint64_t write_weights(const std::string& path, const std::vector<safetensors::Source>& sources, DType dtype,
                       std::map<std::string, std::string> meta, ProgressStyle style) {
  uint64_t total = 0;
  for (const safetensors::Source& s : sources) total += safetensors::stored_bytes(s, dtype);
  ProgressMeter meter("export: writing", total, style);
  safetensors::WriteOptions options;
  options.dtype = dtype;
  options.metadata = std::move(meta);
  options.on_bytes = [&meter](uint64_t bytes) { meter.add(bytes); };
  const uint64_t bytes = safetensors::write_file(path, sources, options);
  meter.finish();
  return bytes;
}

// Before the (long) verification: an --out the rename could never land on.
void check_out_path(const std::string& out) {
  std::error_code ec;
  if (fs::is_directory(out, ec))
    fail("--out ", out, " is a directory; give the file to write, e.g. --out ",
         (fs::path(out) / "model.safetensors").string(), " (or --format hf to write a model directory)");
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    fail("--out ", out, ": directory ", parent.string(), " does not exist");
}

int export_safetensors(const std::string& run_dir, const std::string& out, std::optional<int64_t> requested,
                       DType dtype, ProgressStyle style) {
  check_out_path(out);
  const int64_t step = choose_step(run_dir, requested);
  StepReader reader = open_verified_step(run_dir, step, "export: verifying", style);

  // Tied or not comes from the recorded shape; a checkpoint whose shape text will not parse is
  // still exportable, judged by whether it has an lm_head.weight.
  bool tied = !reader.has("weight", "lm_head.weight");
  std::string shape_note;
  try {
    const Shape shape = parse_shape_text(reader.record().state.shape_text, reader.check().dir + "/state.h5");
    tied = shape.model.tie_embeddings;
    shape_note = model_summary(shape.model);
  } catch (const std::exception& e) {
    std::cerr << "flywheel-ckpt export: warning: " << e.what() << "\n";
  }
  if (tied && reader.has("weight", "lm_head.weight"))
    fail("step ", step, " records tie_embeddings = true but also stores lm_head.weight; refusing to guess");
  // A LoRA run's step: its adapters and the base it names, rebuilt.
  std::vector<safetensors::Source> sources = weight_sources(reader);
  std::unique_ptr<Transformer> base;
  if (reader.record().state.extra.contains("lora_base")) {
    base = rebuilt_lora_base(reader, parse_shape_text(reader.record().state.shape_text, reader.check().dir));
    const std::vector<safetensors::Source> from_base = base_sources(*base);
    sources.insert(sources.end(), from_base.begin(), from_base.end());
  }
  const uint64_t bytes = write_weights(out, sources, dtype, export_metadata(reader, tied, shape_note), style);
  std::cout << "exported " << sources.size() << " tensors of step " << step << " (" << reader.check().dir
            << ") to " << out << " (" << format_bytes(bytes)
            << ", safetensors " << (dtype == DType::kBF16 ? "BF16" : "F32")
            << (tied ? ", tied embeddings: no lm_head.weight" : "") << ")\n";
  return kExitOk;
}

}  // namespace

std::vector<safetensors::Source> weight_sources(StepReader& reader) {
  std::vector<safetensors::Source> sources;
  for (const std::string& name : reader.names("weight"))
    sources.push_back({name, reader.global_shape("weight", name),
                       [&reader, name] { return reader.read("weight", name); }});
  return sources;
}

std::unique_ptr<Transformer> rebuilt_lora_base(StepReader& reader, const Shape& shape) {
  auto base = std::make_unique<Transformer>(shape.model, Transformer::WeightsOnly{DType::kF32});
  try {
    load_lora_base(base->params(), shape.model, shape.train);
  } catch (const std::exception& e) {
    fail("step ", reader.check().step, " is a LoRA run whose base (", lora_base_source(shape.train),
         ") cannot be rebuilt: ", without_source_location(e.what()));
  }
  check_lora_base(reader.record().state.extra, lora_base_checksum(base->params()), shape.train, reader.check().dir);
  return base;
}

std::vector<safetensors::Source> base_sources(const Transformer& base) {
  std::vector<safetensors::Source> sources;
  const ParameterSet& params = base.params();
  for (const ParamInfo& info : params.list()) {
    if (info.adapter) continue;
    const float* v = params.value(params.find(info.name));
    const int64_t n = info.numel;
    sources.push_back({info.name, info.shape, [v, n] { return std::vector<float>(v, v + n); }});
  }
  return sources;
}

std::map<std::string, std::string> export_metadata(const StepReader& reader, bool tied, const std::string& model_note) {
  std::map<std::string, std::string> meta = {
      {"producer", "flywheel-ckpt export"},
      {"flywheel_step", std::to_string(reader.check().step)},
      {"flywheel_checkpoint_format_version", std::to_string(reader.record().format_version)},
      {"flywheel_mesh", reader.record().state.mesh.dump()},
      {"tie_word_embeddings", tied ? "true" : "false"}};
  if (tied)
    meta["lm_head"] = "tied to model.embed_tokens.weight: lm_head.weight is not stored (tie_word_embeddings)";
  if (!model_note.empty()) meta["flywheel_model"] = model_note;
  return meta;
}

int export_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "export",
      "Writes the weights of one committed step (verified first) for Hugging Face: --format safetensors, one\n"
      "safetensors file of F32 (or BF16) tensors under their Hugging Face names, in sorted-name order; --format hf,\n"
      "a model directory transformers loads (config.json, model.safetensors or shards + index,\n"
      "generation_config.json, and the tokenizer files of the model the run was imported from; a LoRA run's with\n"
      "--merge); --format peft, a LoRA run's adapter as PEFT saves one (adapter_config.json +\n"
      "adapter_model.safetensors). Moments are not exported.");
  command.positional("RUN_DIR", "the run directory")
      .required<std::string>("format", "FMT", "output format (allowed: safetensors, hf, peft)", "safetensors")
      .required<std::string>("out", "PATH",
                             "safetensors: the file to write (replaced if it exists); hf, peft: the directory to write")
      .option<std::string>("dtype", "DTYPE", "tensor dtype in the file: fp32, or bf16 (rounded to nearest even)",
                           "fp32")
      .option<std::string>("max-shard-size", "SIZE",
                           "hf: weights above SIZE are split into model-0000i-of-0000n.safetensors shards with "
                           "model.safetensors.index.json (5GB, 500MB, 2GiB or bytes; default 5GB, as Hugging Face)")
      .flag("force",
            "hf, peft: replace --out when it is a non-empty directory of that kind (holding a config.json, or an "
            "adapter_config.json)")
      .flag("merge", "hf: fold a LoRA run's adapters into the base weights (W + s B A) and write the merged model");
  add_step_option(command, "export");
  add_progress_option(command);
  command.notes(
      "Tied embeddings: no lm_head.weight entry (noted in __metadata__.tie_word_embeddings); transformers re-ties it.\n"
      "safetensors: read it with safetensors.torch.load_file(FILE), or parse the 8-byte header length + JSON.\n"
      "hf: the architecture and the other keys of config.json come from RUN_DIR/hf/config.json when the run was\n"
      "imported from Hugging Face (whose tokenizer files and generation_config.json are copied too); otherwise it is\n"
      "inferred (experts: Qwen3MoeForCausalLM, qk_norm: Qwen3ForCausalLM, else LlamaForCausalLM) and no tokenizer\n"
      "is written (Flywheel's byte tokenizer has no Hugging Face files). The directory is built as OUT.tmp-<pid>\n"
      "and renamed into place when complete: a failure or SIGINT / SIGTERM / SIGHUP leaves nothing. Load it with\n"
      "transformers.AutoModelForCausalLM.from_pretrained(OUT).\n"
      "peft: adapter_model.safetensors holds base_model.model.<module>.lora_A/B.weight; adapter_config.json names\n"
      "r, lora_alpha, use_rslora and target_modules (module names, or a regular expression where names cannot\n"
      "say it exactly, e.g. experts without the dense MLP). Load it with\n"
      "peft.PeftModel.from_pretrained(base, OUT), base being the model the run trained on.");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  const std::string format = args.get<std::string>("format");
  if (format != "safetensors" && format != "hf" && format != "peft")
    usage_error("--format ", format, " is not supported (allowed: safetensors, hf, peft)");
  if (args.flag("merge") && format != "hf")
    usage_error("--merge applies to --format hf only (peft writes the adapter unmerged)");
  const std::string out = args.get<std::string>("out");
  const std::string dtype_text = args.get<std::string>("dtype");
  if (dtype_text != "fp32" && dtype_text != "bf16")
    usage_error("--dtype ", dtype_text, " is not supported (allowed: fp32, bf16)");
  const DType dtype = dtype_text == "bf16" ? DType::kBF16 : DType::kF32;
  const ProgressStyle style = progress_style(args);
  const std::optional<std::string> shard_text = args.find<std::string>("max-shard-size");
  if (format == "safetensors") {
    if (shard_text) usage_error("--max-shard-size applies to --format hf only (safetensors writes one file)");
    if (args.flag("force")) usage_error("--force applies to --format hf only (safetensors replaces FILE anyway)");
    return export_safetensors(run_dir, out, step_option(args), dtype, style);
  }
  HfExportRequest request{run_dir, out, step_option(args), dtype, 0, args.flag("force"), args.flag("merge"), style};
  if (format == "peft") {
    if (shard_text) usage_error("--max-shard-size applies to --format hf only (an adapter is one file)");
    check_out_dir(request, "adapter_config.json");
    return export_peft(request);
  }
  const std::string size = shard_text.value_or("5GB");
  const std::optional<uint64_t> bytes = parse_byte_size(size);
  if (!bytes) usage_error("--max-shard-size ", size, " is not a size (allowed: ", kByteSizeForms, ")");
  request.max_shard_bytes = *bytes;
  check_out_dir(request, "config.json");
  return export_hf(request);
}

}  // namespace flywheel::ckpt_tool
