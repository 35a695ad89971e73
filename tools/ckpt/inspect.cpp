// flywheel-ckpt inspect: what a run directory holds, and one step in detail. Reads state.h5 and
// each shard's tensor list (dataset attributes only), not the tensor data, and verifies nothing:
// it is quick on any size of checkpoint. `verify` checks the checksums.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/shard_file.h"
#include "ckpt/state_file.h"
#include "common.h"
#include "shape_text.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

struct TensorRow {
  std::vector<int64_t> shape;
  std::vector<std::string> arrays;  // "weight", "adam_m", "adam_v" present
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t e : shape) n *= e;
    return n;
  }
};

struct Inspection {
  std::string run_dir, dir;
  std::vector<int64_t> steps;
  std::optional<int64_t> latest;
  std::vector<std::string> stale;
  int64_t step = 0;
  StateRecord record;
  std::string shape_name, shape_summary, shape_error;
  std::optional<ModelConfig> model;       // from the shape text, when it parses
  std::vector<std::string> mismatches;    // shape text vs tensors
  std::map<std::string, TensorRow> tensors;
  std::vector<std::string> unreadable;  // shards whose tensor list could not be read
  int64_t parameters = 0;
  uint64_t tensor_bytes = 0, disk_bytes = 0;
  int disk_files = 0;
};

void describe_shape(Inspection& in) {
  const nlohmann::json& extra = in.record.state.extra;
  for (const char* key : {"shape", "shape_name"})  // shape_name wins
    if (extra.is_object() && extra.contains(key) && extra[key].is_string()) in.shape_name = extra[key].get<std::string>();
  try {
    const Shape shape = parse_shape_text(in.record.state.shape_text, in.dir + "/state.h5");
    in.shape_summary = model_summary(shape.model);
    in.model = shape.model;
  } catch (const std::exception& e) {
    in.shape_error = e.what();
  }
}

void list_tensors(Inspection& in) {
  for (size_t r = 0; r < in.record.shards.size(); ++r) {
    const std::string path = (fs::path(in.dir) / shard_file_name(static_cast<int>(r))).string();
    try {
      for (const ShardPiece& p : read_shard_index(path, static_cast<int>(r))) {
        TensorRow& row = in.tensors[p.name];
        if (row.shape.empty() || p.group == "weight") row.shape = p.global_shape;
        if (std::find(row.arrays.begin(), row.arrays.end(), p.group) == row.arrays.end()) row.arrays.push_back(p.group);
      }
    } catch (const std::exception& e) {
      in.unreadable.push_back(e.what());
    }
  }
  for (auto& [name, row] : in.tensors) {
    std::sort(row.arrays.begin(), row.arrays.end(), [](const std::string& a, const std::string& b) {
      auto rank = [](const std::string& g) { return g == "weight" ? 0 : g == "adam_m" ? 1 : 2; };
      return rank(a) < rank(b);
    });
    if (std::find(row.arrays.begin(), row.arrays.end(), "weight") != row.arrays.end()) in.parameters += row.numel();
    in.tensor_bytes += static_cast<uint64_t>(row.numel()) * 4 * row.arrays.size();
  }
}

Inspection inspect(const std::string& run_dir, std::optional<int64_t> requested) {
  Inspection in;
  in.run_dir = run_dir;
  in.step = choose_step(run_dir, requested);
  in.steps = committed_steps(run_dir);
  in.latest = read_latest_step(run_dir);
  in.stale = stale_step_dirs(run_dir);
  in.dir = step_dir_path(run_dir, in.step);
  in.record = read_state_file((fs::path(in.dir) / "state.h5").string());
  describe_shape(in);
  list_tensors(in);
  in.disk_bytes = directory_bytes(in.dir, &in.disk_files);
  if (in.model && in.unreadable.empty()) {
    std::map<std::string, std::vector<int64_t>> weights;
    for (const auto& [name, row] : in.tensors)
      if (std::find(row.arrays.begin(), row.arrays.end(), "weight") != row.arrays.end()) weights[name] = row.shape;
    in.mismatches = model_mismatches(*in.model, weights);
  }
  return in;
}

nlohmann::json to_json(const Inspection& in) {
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& [name, row] : in.tensors)
    tensors.push_back({{"name", name}, {"shape", row.shape}, {"dtype", "float32"}, {"arrays", row.arrays},
                       {"numel", row.numel()}, {"bytes", static_cast<uint64_t>(row.numel()) * 4 * row.arrays.size()}});
  nlohmann::json shards = nlohmann::json::array();
  for (const FileDigest& d : in.record.shards) shards.push_back({{"bytes", d.bytes}, {"xxh3_64", hex64(d.xxh3_64)}});
  return {{"run_dir", in.run_dir},
          {"committed_steps", in.steps},
          {"latest", in.latest ? nlohmann::json(*in.latest) : nlohmann::json(nullptr)},
          {"stale_dirs", in.stale},
          {"step", in.step},
          {"step_dir", in.dir},
          {"format_version", in.record.format_version},
          {"world_size", in.record.shards.size()},
          {"mesh", in.record.state.mesh},
          {"seed", in.record.state.seed},
          {"extra", in.record.state.extra},
          {"shape", {{"name", in.shape_name}, {"summary", in.shape_summary}, {"error", in.shape_error},
                     {"mismatches", in.mismatches}, {"text", in.record.state.shape_text}}},
          {"shards", shards},
          {"tensors", tensors},
          {"unreadable_shards", in.unreadable},
          {"totals", {{"tensors", in.tensors.size()}, {"parameters", in.parameters},
                      {"tensor_bytes", in.tensor_bytes}, {"disk_bytes", in.disk_bytes}, {"disk_files", in.disk_files}}}};
}

void print_text(const Inspection& in) {
  std::cout << "run directory: " << in.run_dir << "\n"
            << "committed steps: " << steps_list(in.steps)
            << (in.latest ? " (latest: " + std::to_string(*in.latest) + ")" : " (no latest file)") << "\n";
  for (const std::string& s : in.stale)
    std::cout << "stale: " << s << " (an interrupted save or delete; never loaded, removed by the next save/load)\n";
  std::cout << "\nstep " << in.step << " (" << in.dir << ")\n"
            << "  format version: " << in.record.format_version << "\n"
            << "  world size:     " << in.record.shards.size() << " shard(s)\n"
            << "  mesh:           " << format_mesh(in.record.state.mesh) << "\n"
            << "  seed:           " << in.record.state.seed << "\n"
            << "  shape:          " << (in.shape_name.empty() ? "(name not recorded)" : in.shape_name) << "; "
            << (in.shape_error.empty() ? in.shape_summary : in.shape_error) << "\n"
            << "  extra:          " << in.record.state.extra.dump() << "\n";
  if (!in.mismatches.empty())
    std::cout << "  WARNING: the shape text does not describe these tensors (" << in.mismatches.size()
              << " difference(s), first: " << in.mismatches.front()
              << "); recorded without its command-line overrides? `reshard --set` can correct it\n";
  std::cout << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, row] : in.tensors) {
    std::string arrays;
    for (const std::string& a : row.arrays) arrays += (arrays.empty() ? "" : ",") + a;
    rows.push_back({name, shape_text(row.shape), "float32", arrays,
                    format_bytes(static_cast<uint64_t>(row.numel()) * 4 * row.arrays.size())});
  }
  std::cout << "tensors (" << in.tensors.size() << "):\n";
  print_table(std::cout, {"name", "global shape", "dtype", "arrays", "bytes"}, rows, {false, false, false, false, true});
  std::cout << "\ntotals: " << in.parameters << " parameters; " << format_bytes(in.tensor_bytes)
            << " of tensors (weights + moments); " << format_bytes(in.disk_bytes) << " on disk in " << in.disk_files
            << " files\n";
  for (const std::string& u : in.unreadable) std::cout << "UNREADABLE: " << u << "\n";
}

}  // namespace

int inspect_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "inspect",
      "Shows the committed steps of a run directory (and stale *.partial directories), then one step:\n"
      "mesh, world size, format version, shape, and every tensor with its global shape and size.");
  command.positional("RUN_DIR", "the run directory");
  add_step_option(command, "show");
  command.flag("json", "machine-readable output (one JSON object)");
  command.notes("Reads metadata only; run `flywheel-ckpt verify` to check the checksums.");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  const Inspection in = inspect(run_dir, step_option(args));
  if (args.flag("json"))
    std::cout << to_json(in).dump(2) << "\n";
  else
    print_text(in);
  if (in.unreadable.empty()) return kExitOk;
  std::cerr << "flywheel-ckpt inspect: " << in.unreadable.size()
            << " shard(s) could not be listed; run `flywheel-ckpt verify " << run_dir << "`\n";
  return kExitFailed;
}

}  // namespace flywheel::ckpt_tool
