// flywheel-ckpt export --format safetensors: the weights of one step as a Hugging Face
// safetensors file (https://github.com/huggingface/safetensors, "Format"):
//
//   8 bytes      N, unsigned little-endian: the header's length
//   N bytes      UTF-8 JSON {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [...],
//                "data_offsets": [begin, end]}, ...}, padded with spaces to a multiple of 8
//   the data     every tensor's bytes, little-endian row-major, contiguous, in sorted-name order;
//                offsets count from the first byte after the header
//
// Our tensor names already are Hugging Face (Llama / Qwen2-MoE) names. With tied embeddings the
// checkpoint has no lm_head.weight and neither does the file (transformers re-ties it from
// model.embed_tokens.weight); __metadata__ says so. Moments are not exported.
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "ckpt/checkpoint_dir.h"
#include "ckpt/offline.h"
#include "common.h"
#include "shape_text.h"
#include "temp_output.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;
};

nlohmann::json metadata(const StepReader& reader, bool tied, const std::string& shape_note) {
  nlohmann::json meta = {{"format", "pt"},
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

// The header JSON padded with spaces so the data starts 8-byte aligned.
std::string build_header(const nlohmann::json& meta, std::vector<Entry>& entries, const StepReader& reader) {
  nlohmann::json header = {{"__metadata__", meta}};
  uint64_t offset = 0;
  for (Entry& e : entries) {  // names() is sorted, so the data follows sorted-name order
    e.shape = reader.global_shape("weight", e.name);
    e.begin = offset;
    e.end = offset + 4 * static_cast<uint64_t>(e.shape[0] * row_elements(e.shape));
    offset = e.end;
    header[e.name] = {{"dtype", "F32"}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

void write_le_u64(std::ofstream& out, uint64_t value) {
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(value >> (8 * i));
  out.write(reinterpret_cast<const char*>(bytes), 8);
}

void write_tensor(std::ofstream& out, std::vector<float>& data) {
  if constexpr (std::endian::native == std::endian::big)
    for (float& f : data) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      bits = __builtin_bswap32(bits);
      std::memcpy(&f, &bits, 4);
    }
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * 4));
}

// Writes FILE.tmp, fsyncs it, renames it over FILE: an interrupted export never leaves a file
// that looks complete, and a failed or interrupted one leaves no FILE.tmp (temp_output.h).
uint64_t write_safetensors(const std::string& path, StepReader& reader, const nlohmann::json& meta,
                           ProgressStyle style) {
  std::vector<Entry> entries;
  for (const std::string& name : reader.names("weight")) entries.push_back({name, {}, 0, 0});
  const std::string header = build_header(meta, entries, reader);
  const uint64_t data_bytes = entries.empty() ? 0 : entries.back().end;
  TemporaryOutput output(path);
  {
    std::ofstream out(output.path(), std::ios::binary | std::ios::trunc);
    if (!out) fail("cannot create ", output.path(), ": ", std::strerror(errno));
    write_le_u64(out, header.size());
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    ProgressMeter meter("export: writing", data_bytes, style);
    for (const Entry& e : entries) {
      std::vector<float> data = reader.read("weight", e.name);
      write_tensor(out, data);
      meter.add(data.size() * 4);
    }
    out.close();
    if (!out) fail("writing ", output.path(), " failed (disk full?); removed it, ", path, " is untouched");
    meter.finish();
  }
  output.commit();
  return 8 + header.size() + data_bytes;
}

// Before the (long) verification: an --out the rename could never land on.
void check_out_path(const std::string& out) {
  std::error_code ec;
  if (fs::is_directory(out, ec))
    fail("--out ", out, " is a directory; give the file to write, e.g. --out ", (fs::path(out) / "model.safetensors").string());
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    fail("--out ", out, ": directory ", parent.string(), " does not exist");
}

}  // namespace

int export_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "export",
      "Writes the weights of one committed step (verified first) as a Hugging Face safetensors file:\n"
      "F32 tensors under their Hugging Face names, in sorted-name order. Moments are not exported.");
  command.positional("RUN_DIR", "the run directory")
      .required<std::string>("format", "FMT", "output format (allowed: safetensors)", "safetensors")
      .required<std::string>("out", "FILE", "file to write (replaced if it exists)");
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
  const uint64_t bytes = write_safetensors(out, reader, metadata(reader, tied, shape_note), style);
  std::cout << "exported " << reader.names("weight").size() << " tensors of step " << step << " (" << reader.check().dir
            << ") to " << out << " (" << format_bytes(bytes) << ", safetensors F32"
            << (tied ? ", tied embeddings: no lm_head.weight" : "") << ")\n";
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
