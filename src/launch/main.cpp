// flywheel: the command-line entry point.
//
//   flywheel train --shape FILE [--section.key=value ...]     SFT
//   flywheel run --shape FILE [--section.key=value ...]       trainers + serving replicas (GRPO)
//   flywheel plan --shape FILE [--ranks N]
//
// Errors anywhere below are flywheel::Error exceptions; this is the one place that turns them into
// a message and an exit code. Under MPI with more than one rank, a fatal error aborts the whole job
// (MPI_Abort) so no rank is left waiting in a collective.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/threads.h"
#include "launch/plan_command.h"
#include "launch/runtime.h"
#include "launch/shape.h"
#include "core/signals.h"
#include "parallel/mesh.h"
#include "rl/run_flywheel.h"
#include "train/run_preference.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

constexpr const char* kUsage =
    "usage: flywheel <command> [options]\n"
    "\n"
    "commands:\n"
    "  train --shape FILE [--section.key=value ...]   train a model from a training shape (SFT)\n"
    "  run --shape FILE [--section.key=value ...]     trainers + serving replicas: SFT warm-up, then GRPO\n"
    "  plan --shape FILE [--ranks N] [--device-mem GiB]   memory, communication and step-time plan\n"
    "\n"
    "Run `flywheel <command> --help` for the command's options. Launch under MPI with\n"
    "`mpirun -n N flywheel ...` or `srun --mpi=pmix flywheel ...`.\n";

void print_run_help() {
  Shape defaults;
  std::cout << "usage: flywheel run --shape FILE [--section.key=value ...]\n\n"
               "The flywheel in one job: the first pp x fsdp x cp ranks train, the last mesh.serve ranks\n"
               "serve. After rl.sft_steps of SFT warm-up on the task, every step the replicas sample\n"
               "rl.group_size completions of rl.prompts_per_step prompts from the newest hot-loaded\n"
               "snapshot, the trainer scores them and takes a GRPO step, and publishes the new weights\n"
               "(full or delta) for the replicas. Writes <train.out_dir>/<run>/metrics.jsonl,\n"
               "ledger.jsonl (hot-loads: flywheel-ckpt ledger RUN_DIR) and publish/. docs/rl.md explains it.\n"
               "Example: mpirun -n 2 flywheel run --shape configs/shapes/tiny-rl.ini\n\n"
               "Shape keys (defaults shown):\n"
            << shape_options(defaults) << "\n";
}

void print_train_help() {
  Shape defaults;
  std::cout << "usage: flywheel train --shape FILE [--section.key=value ...]\n\n"
               "Trains the model described by a training shape (configs/shapes/*.ini). Every key of\n"
               "the shape can be overridden on the command line, e.g. --train.steps=20; the command\n"
               "line wins over the file. Writes <train.out_dir>/<run>/metrics.jsonl (one line per step).\n\n"
               "Shape keys (defaults shown):\n"
            << shape_options(defaults) << "\n";
}

struct TrainArgs {
  std::string shape_path;
  std::vector<std::string> overrides;
  bool help = false;
};

TrainArgs parse_train_args(int argc, char** argv) {
  TrainArgs args;
  for (int i = 2; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      args.help = true;
    } else if (arg == "--shape") {
      FW_CHECK(i + 1 < argc, "--shape needs a file: --shape configs/shapes/tiny-dense.ini");
      args.shape_path = argv[++i];
    } else if (arg.rfind("--shape=", 0) == 0) {
      args.shape_path = arg.substr(8);
    } else {
      args.overrides.push_back(arg);
    }
  }
  if (!args.help)
    FW_CHECK(!args.shape_path.empty(), "flywheel ", argv[1], " needs --shape FILE (for example configs/shapes/tiny-dense.ini)");
  return args;
}

// The shape of `flywheel train|run --shape FILE [overrides]`, or nullopt after printing --help.
std::optional<Shape> command_shape(const Runtime& rt, int argc, char** argv, void (*print_help)()) {
  const TrainArgs args = parse_train_args(argc, argv);
  if (args.help) {
    if (rt.rank == 0) print_help();
    return std::nullopt;
  }
  return load_shape(args.shape_path, args.overrides);
}

// Threads, the world communicator, the mesh and the preemption handlers, then `run(mesh)`.
template <typename Run>
int on_mesh(const Runtime& rt, const Shape& shape, Run run) {
  set_thread_count(shape.train.threads > 0 ? shape.train.threads : default_thread_count(rt.local_size));
  std::unique_ptr<Comm> world = make_mpi_world_comm();
  Mesh mesh(shape.mesh, *world);
  install_preemption_handlers();
  return run(mesh);
}

int train_command(const Runtime& rt, int argc, char** argv) {
  const std::optional<Shape> shape = command_shape(rt, argc, argv, print_train_help);
  if (!shape) return 0;
  shape->validate(rt.world_size);
  return on_mesh(rt, *shape, [&](Mesh& mesh) {
    if (shape->train.objective == "dpo")
      return run_preference_training(shape->train_spec(), shape->data.source.substr(std::string("jsonl:").size()),
                                     shape->dpo_config(), mesh);
    auto source = make_data_source(shape->data, shape->train.seq_len, shape->train.seed);
    return run_training(shape->train_spec(), *source, mesh);
  });
}

int run_command(const Runtime& rt, int argc, char** argv) {
  const std::optional<Shape> shape = command_shape(rt, argc, argv, print_run_help);
  if (!shape) return 0;
  const FlywheelSpec spec = shape->flywheel_spec();
  spec.validate(rt.world_size);
  return on_mesh(rt, *shape, [&](Mesh& mesh) { return run_flywheel(spec, mesh); });
}

int dispatch(const Runtime& rt, int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0) {
    if (rt.rank == 0) std::cout << kUsage;
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  if (command == "--version") {
    if (rt.rank == 0) std::cout << "flywheel 0.1.0\n";
    return 0;
  }
  if (command == "train") return train_command(rt, argc, argv);
  if (command == "run") return run_command(rt, argc, argv);
  if (command == "plan") return plan_command(rt, argc, argv);
  FW_THROW("unknown command '", command, "'; commands: train, run, plan (see flywheel --help)");
}

}  // namespace
}  // namespace flywheel

int main(int argc, char** argv) {
  using namespace flywheel;
  keep_freed_memory();
  Runtime rt;
  try {
    rt = init_runtime(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flywheel: error: %s\n", e.what());
    return 1;
  }
  configure_logging(rt.world_size > 1 ? rt.rank : -1, LogLevel::kInfo);
  int code = 0;
  try {
    code = dispatch(rt, argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flywheel: error%s: %s\n",
                 rt.world_size > 1 ? (" on rank " + std::to_string(rt.rank)).c_str() : "", e.what());
    std::fflush(stderr);
    if (rt.world_size > 1) abort_job(1);
    code = 1;
  }
  finalize_runtime();
  return code;
}
