// flywheel-ckpt publish RUN_DIR --out DIR [--step N ...] [--full-every K] [--dtype fp32|bf16]: turns committed
// checkpoints into serving snapshots (docs/hot-load.md) in a publish directory, for `flywheel serve --publish-dir DIR`
// to hot-load (POST /v1/hot_load) or for any replica that reads the format. The steps are published in increasing
// order by one SnapshotPublisher, exactly as a trainer publishes: the first is a full snapshot, each next one an XOR
// delta over the previous (a full again every K). Each step's weights are loaded on this process (any mesh's
// checkpoint; a LoRA run's base rebuilt from its source and checked), so the tool needs the whole model in memory.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>

#include "ckpt/checkpoint.h"
#include "common.h"
#include "launch/shape.h"
#include "model/transformer.h"
#include "serve/replica.h"
#include "serve/snapshot_publisher.h"
#include "train/run_weights.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

std::vector<int64_t> steps_to_publish(const std::string& run_dir, const ParsedArgs& args) {
  const std::vector<int64_t> committed = committed_steps(run_dir);
  if (committed.empty()) fail(run_dir, " holds no committed checkpoint (no step-N/)");
  std::vector<int64_t> steps;
  for (const std::string& text : args.list("step")) {
    const int64_t step = detail::parse_integer("step", text, 0, INT64_MAX);
    if (std::find(committed.begin(), committed.end(), step) == committed.end())
      fail("--step ", step, " is not a committed checkpoint of ", run_dir, " (committed: ", steps_list(committed), ")");
    steps.push_back(step);
  }
  if (steps.empty()) steps.push_back(committed.back());
  std::sort(steps.begin(), steps.end());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  return steps;
}

}  // namespace

int publish_command(int argc, char** argv) {
  CommandLine command =
      subcommand("publish",
                 "Writes committed checkpoints as serving snapshots into a publish directory: the first step given as\n"
                 "a full snapshot (step-N.full), each next one as an XOR delta over the previous (step-N.delta), as a\n"
                 "trainer publishes them. `flywheel serve --publish-dir DIR` then hot-loads them by request.");
  command.positional("RUN_DIR", "the run directory");
  command.option<std::string>("out", "DIR", "the publish directory (created if missing)")
      .repeatable("step", "N", "a committed step to publish (repeatable; default: the newest)")
      .option<int64_t>("full-every", "K", "a full snapshot at least every K published steps", "10")
      .option<std::string>("dtype", "fp32|bf16", "the snapshots' dtype (flywheel serve loads fp32)", "fp32");
  command.notes(
      "Files of steps >= the first one published that are already in DIR are replaced (a publisher's\n"
      "restart rule). Example: flywheel-ckpt publish checkpoints/default --out pub --step 100 --step 200");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  if (!args.has("out")) usage_error("missing --out DIR: the publish directory to write");
  const std::string out = args.get<std::string>("out");
  const int64_t full_every = args.get<int64_t>("full-every");
  if (full_every < 1) usage_error("--full-every = ", full_every, ": needs a positive number");
  ServeDtype dtype = ServeDtype::kFp32;
  try {
    dtype = parse_serve_dtype(args.get<std::string>("dtype"));
  } catch (const Error& e) {
    usage_error("--dtype: ", e.what());
  }
  if (!fs::exists(run_dir + "/shape.ini")) fail(run_dir, " is not a run directory (no shape.ini)");
  const Shape shape = load_shape(run_dir + "/shape.ini", {}, FromHf::kAsRecorded);
  shape.model.validate();
  const std::vector<int64_t> steps = steps_to_publish(run_dir, args);

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) fail("cannot create --out ", out, ": ", ec.message());
  auto model = std::make_unique<Transformer>(shape.model, Transformer::WeightsOnly{DType::kF32});
  const std::vector<NamedTensor> tensors = parameter_tensors(model->params());
  SnapshotPublisher publisher(out, dtype, full_every, /*keep_full=*/static_cast<int>(steps.size()) + 1);
  bool base_loaded = false;
  for (int64_t step : steps) {
    load_run_step(model->params(), shape.model, shape.train, run_dir, step, base_loaded);
    const PublishInfo info = publisher.publish(step, tensors);
    std::cout << "published step " << step << ": " << info.path << " (" << (info.full ? "full" : "delta over step ")
              << (info.full ? "" : std::to_string(info.base_step)) << ", " << format_bytes(info.file_bytes) << " of "
              << format_bytes(info.full_bytes) << " raw, checksum " << std::hex << info.checksum << std::dec << ")\n";
  }
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
