// flywheel: the command-line entry point.
//
//   flywheel train --shape FILE [--section.key=value ...]     SFT
//   flywheel run --shape FILE [--section.key=value ...]       trainers + serving replicas (GRPO)
//   flywheel plan --shape FILE [--ranks N]
//   flywheel eval --run DIR [--task NAME] [--data FILE]
//
// Errors anywhere below are flywheel::Error exceptions; this is the one place that turns them into
// a message and an exit code: 1, a usage error included (launch/command_line.h; its message points
// at the command's --help), so scripts see one failure code; a bare `flywheel` prints the usage and
// exits 2. Under MPI with more than one rank, a fatal error aborts the whole job (MPI_Abort) so no
// rank is left waiting in a collective.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory_budget.h"
#include "core/threads.h"
#include "core/utf8.h"
#include "launch/command_line.h"
#include "launch/eval_command.h"
#include "launch/plan_command.h"
#include "launch/runtime.h"
#include "launch/shape.h"
#include "core/signals.h"
#include "parallel/mesh.h"
#include "rl/flywheel_memory.h"
#include "rl/run_flywheel.h"
#include "train/run_preference.h"
#include "train/run_training.h"
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
    "  eval --run DIR [--task NAME] [--data FILE]     accuracy and held-out loss of a run's checkpoints\n"
    "\n"
    "Run `flywheel <command> --help` for the command's options. Launch under MPI with\n"
    "`mpirun -n N flywheel ...` or `srun --mpi=pmix flywheel ...`.\n";

// `flywheel train|run --shape FILE [--section.key=value ...]`; --help lists every shape key.
CommandLine shape_command(const std::string& program, const std::string& summary, const std::string& example) {
  CommandLine command(program, summary);
  command.required<std::string>("shape", "FILE", "training shape (configs/shapes/*.ini)", example);
  command.shape_overrides("any shape key below, e.g. --train.steps=20; the command line wins over the file");
  Shape defaults;
  std::ostringstream keys;
  keys << "Shape keys (defaults shown):\n" << shape_options(defaults);
  command.notes(keys.str());
  return command;
}

CommandLine train_command_line() {
  return shape_command("flywheel train",
                       "Trains the model described by a training shape (configs/shapes/*.ini). Every key of\n"
                       "the shape can be overridden on the command line. Writes <train.out_dir>/<run>/metrics.jsonl\n"
                       "(one line per step) and the resolved shape (file + overrides) as shape.ini.",
                       "configs/shapes/tiny-dense.ini");
}

CommandLine run_command_line() {
  return shape_command(
      "flywheel run",
      "The flywheel in one job: the first pp x fsdp x cp ranks train, the last mesh.serve ranks\n"
      "serve. After rl.sft_steps of SFT warm-up on the task, every step the replicas sample\n"
      "rl.group_size completions of rl.prompts_per_step prompts from the newest hot-loaded\n"
      "snapshot, the trainer scores them and takes a GRPO step, and publishes the new weights\n"
      "(full or delta) for the replicas. Writes <train.out_dir>/<run>/metrics.jsonl,\n"
      "ledger.jsonl (hot-loads: flywheel-ckpt ledger RUN_DIR) and publish/. docs/rl.md explains it.\n"
      "Example: mpirun -n 2 flywheel run --shape configs/shapes/tiny-rl.ini",
      "configs/shapes/tiny-rl.ini");
}

// The shape of `flywheel train|run`, or nullopt after printing --help. argv[1] is the command.
std::optional<Shape> command_shape(const Runtime& rt, const CommandLine& command, int argc, char** argv) {
  const ParsedArgs args = command.parse(argc - 1, argv + 1);
  if (args.help()) {
    if (rt.rank == 0) std::cout << command.help();
    return std::nullopt;
  }
  return load_shape(args.get<std::string>("shape"), args.overrides());
}

// Refuses a run whose rank would not fit in this machine's memory, before anything large is
// allocated or anything is written (docs/operations.md, "Memory").
void check_rank_memory(const Runtime& rt, const MemoryNeed& need) {
  check_memory_fits(need, machine_memory(), rt.local_size,
                    "shrink the model or the batch, or spread it over more ranks (mesh.fsdp, mesh.pp; "
                    "`flywheel plan --shape FILE --ranks N` proposes meshes)");
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
  const std::optional<Shape> shape = command_shape(rt, train_command_line(), argc, argv);
  if (!shape) return 0;
  shape->validate(rt.world_size);
  check_rank_memory(rt, trainer_memory_need(shape->train_spec(), rt.rank));
  return on_mesh(rt, *shape, [&](Mesh& mesh) {
    if (shape->train.objective == "dpo")
      return run_preference_training(shape->train_spec(), shape->data.source.substr(std::string("jsonl:").size()),
                                     shape->dpo_config(), mesh);
    auto source = make_data_source(shape->data, shape->train.seq_len, shape->train.seed);
    return run_training(shape->train_spec(), *source, mesh);
  });
}

int run_command(const Runtime& rt, int argc, char** argv) {
  const std::optional<Shape> shape = command_shape(rt, run_command_line(), argc, argv);
  if (!shape) return 0;
  const FlywheelSpec spec = shape->flywheel_spec();
  spec.validate(rt.world_size);
  check_rank_memory(rt, flywheel_memory_need(spec, rt.rank));
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
  if (command == "eval") return eval_command(rt, argc, argv);
  FW_INPUT_THROW("unknown command '", command, "'; commands: train, run, plan, eval (see flywheel --help)");
}

// The error line of a failed command: an input error as it is (FLYWHEEL_LOG=debug adds where the
// check is), a usage error with a pointer to --help, an allocation failure with what the memory
// check had planned (std::bad_alloc alone says nothing of what was too large).
void print_failure(const Runtime& rt, const std::exception& e, char** argv) {
  std::string message = e.what();
  if (dynamic_cast<const UsageError*>(&e)) message += " (see `flywheel " + std::string(argv[1]) + " --help`)";
  if (dynamic_cast<const std::bad_alloc*>(&e))
    message = "out of memory in `flywheel " + std::string(argv[1]) + "`: an allocation failed (std::bad_alloc); " +
              out_of_memory_note() + ". Shrink the model or the batch, or spread it over more ranks";
  std::fprintf(stderr, "flywheel: error%s: %s\n",
               rt.world_size > 1 ? (" on rank " + std::to_string(rt.rank)).c_str() : "",
               utf8::printable(message).c_str());
  if (const auto* input = dynamic_cast<const InputError*>(&e); input && !input->origin().empty())
    log_debug("the check that refused the input: ", input->origin());
  std::fflush(stderr);
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
  configure_logging(rt.world_size > 1 ? rt.rank : -1, log_level_from_environment());
  int code = 0;
  try {
    code = dispatch(rt, argc, argv);
  } catch (const std::exception& e) {
    print_failure(rt, e, argv);
    if (rt.world_size > 1) abort_job(1);
    code = 1;
  }
  finalize_runtime();
  return code;
}
