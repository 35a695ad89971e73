// flywheel-ckpt export --format safetensors: the weights of one step as a Hugging Face safetensors
// file, written by the library's one safetensors writer (ckpt/safetensors.h: header padded to 8
// bytes, {"format": "pt"}, tensors in sorted-name order, FILE.tmp renamed into place), in F32 or,
// with --dtype bf16, BF16 rounded to nearest even.
//
// Our tensor names already are Hugging Face (Llama / Qwen2-MoE) names. With tied embeddings the
// checkpoint has no lm_head.weight and neither does the file (transformers re-ties it from
// model.embed_tokens.weight); __metadata__ says so. Moments are not exported.
#include <filesystem>
#include <iostream>
#include <map>

#include "ckpt/checkpoint_dir.h"
#include "ckpt/offline.h"
#include "ckpt/safetensors.h"
#include "common.h"
#include "shape_text.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

std::map<std::string, std::string> metadata(const StepReader& reader, bool tied, const std::string& shape_note) {
  std::map<std::string, std::string> meta = {
      {"producer", "flywheel-ckpt export"},
      {"flywheel_step", std::to_string(reader.check().step)},
      {"flywheel_checkpoint_format_version", std::to_string(reader.record().format_version)},
      {"flywheel_mesh", reader.record().state.mesh.dump()},
      {"tie_word_embeddings", tied ? "true" : "false"}};
  if (tied)
    meta["lm_head"] = "tied to model.embed_tokens.weight: lm_head.weight is not stored (tie_word_embeddings)";
  if (!shape_note.empty()) meta["flywheel_model"] = shape_note;
  return meta;
}

// Streams the step's weights one tensor at a time into the file.
uint64_t write_weights(const std::string& path, StepReader& reader, DType dtype,
                       std::map<std::string, std::string> meta, ProgressStyle style) {
  std::vector<safetensors::Source> sources;
  for (const std::string& name : reader.names("weight"))
    sources.push_back({name, reader.global_shape("weight", name),
                       [&reader, name] { return reader.read("weight", name); }});
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
         (fs::path(out) / "model.safetensors").string());
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    fail("--out ", out, ": directory ", parent.string(), " does not exist");
}

}  // namespace

int export_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "export",
      "Writes the weights of one committed step (verified first) as a Hugging Face safetensors file:\n"
      "F32 (or BF16) tensors under their Hugging Face names, in sorted-name order. Moments are not exported.");
  command.positional("RUN_DIR", "the run directory")
      .required<std::string>("format", "FMT", "output format (allowed: safetensors)", "safetensors")
      .required<std::string>("out", "FILE", "file to write (replaced if it exists)")
      .option<std::string>("dtype", "DTYPE", "tensor dtype in the file: fp32, or bf16 (rounded to nearest even)",
                           "fp32");
  add_step_option(command, "export");
  add_progress_option(command);
  command.notes("Tied embeddings: no lm_head.weight entry (noted in __metadata__.tie_word_embeddings).\n"
                "Read it with safetensors.torch.load_file(FILE), or parse the 8-byte header length + JSON.");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  const std::string format = args.get<std::string>("format");
  if (format != "safetensors") usage_error("--format ", format, " is not supported (allowed: safetensors)");
  const std::string out = args.get<std::string>("out");
  const std::string dtype_text = args.get<std::string>("dtype");
  if (dtype_text != "fp32" && dtype_text != "bf16")
    usage_error("--dtype ", dtype_text, " is not supported (allowed: fp32, bf16)");
  const DType dtype = dtype_text == "bf16" ? DType::kBF16 : DType::kF32;
  const ProgressStyle style = progress_style(args);
  check_out_path(out);

  const int64_t step = choose_step(run_dir, step_option(args));
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
  const uint64_t bytes = write_weights(out, reader, dtype, metadata(reader, tied, shape_note), style);
  std::cout << "exported " << reader.names("weight").size() << " tensors of step " << step << " (" << reader.check().dir
            << ") to " << out << " (" << format_bytes(bytes)
            << ", safetensors " << (dtype == DType::kBF16 ? "BF16" : "F32")
            << (tied ? ", tied embeddings: no lm_head.weight" : "") << ")\n";
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
