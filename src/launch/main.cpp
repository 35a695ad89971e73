// flywheel: the command-line entry point.
//
//   flywheel train --shape FILE [--section.key=value ...]     SFT
//   flywheel run --shape FILE [--section.key=value ...]       trainers + serving replicas (GRPO)
//   flywheel plan --shape FILE [--ranks N]
//   flywheel eval --run DIR [--task NAME] [--data FILE]
//   flywheel serve --model DIR [--port N]                     the OpenAI-compatible endpoint
//
// Errors anywhere below are flywheel::Error exceptions; this is the one place that turns them into
// a message and an exit code: 1, a usage error included (launch/command_line.h; its message points
// at the command's --help), so scripts see one failure code; a bare `flywheel` prints the usage and
// exits 1 too. Two phases: every rank first reads and checks its input (command line, shape, data)
// without a collective, and the ranks agree whether that failed: an input error is printed once and
// every rank exits 1 on its own. An error after that, with the mesh in place, may be one rank's alone
// while the others wait in a collective: with more than one rank it ends the job with MPI_Abort.
#include <cstdio>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <new>
#include <optional>
#include <sstream>
#include <string>

#include "core/allocator.h"
#include "core/error.h"
#include "core/log.h"
#include "core/memory_budget.h"
#include "core/signals.h"
#include "core/threads.h"
#include "core/utf8.h"
#include "data/data_source.h"
#include "launch/command_line.h"
#include "launch/eval_command.h"
#include "launch/plan_command.h"
#include "launch/runtime.h"
#include "launch/serve_command.h"
#include "launch/shape.h"
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
    "  serve --model DIR [--port N]                   an OpenAI-compatible HTTP endpoint for a model or a run\n"
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

// What a command runs once every rank has read and checked its input.
using Job = std::function<int()>;

// The discovery line, threads, the world communicator, the mesh and the stop handlers, then `run(mesh)`.
template <typename Run>
int on_mesh(const Runtime& rt, const Shape& shape, Run run) {
  log_discovery(rt);
  set_thread_count(shape.train.threads > 0 ? shape.train.threads : default_thread_count(rt.local_size));
  std::unique_ptr<Comm> world = make_mpi_world_comm();
  Mesh mesh(shape.mesh, *world);
  install_preemption_handlers(rt.world_size > 1 ? rt.rank : -1);
  return run(mesh);
}

// `flywheel train`: the shape and the data are read and validated here, before any collective.
Job train_job(const Runtime& rt, int argc, char** argv) {
  std::optional<Shape> parsed = command_shape(rt, train_command_line(), argc, argv);
  if (!parsed) return [] { return kExitOk; };
  auto shape = std::make_shared<const Shape>(std::move(*parsed));
  shape->validate(rt.world_size);
  check_rank_memory(rt, trainer_memory_need(shape->train_spec(), rt.rank));
  if (shape->train.objective == "dpo") {
    return [&rt, shape] {
      return on_mesh(rt, *shape, [&](Mesh& mesh) {
        return run_preference_training(shape->train_spec(), shape->data, shape->dpo_config(), mesh);
      });
    };
  }
  std::shared_ptr<DataSource> source = make_data_source(shape->data, shape->train.seq_len, shape->train.seed);
  return [&rt, shape, source] {
    return on_mesh(rt, *shape, [&](Mesh& mesh) { return run_training(shape->train_spec(), *source, mesh); });
  };
}

// `flywheel run`.
Job run_job(const Runtime& rt, int argc, char** argv) {
  std::optional<Shape> parsed = command_shape(rt, run_command_line(), argc, argv);
  if (!parsed) return [] { return kExitOk; };
  auto shape = std::make_shared<const Shape>(std::move(*parsed));
  auto spec = std::make_shared<const FlywheelSpec>(shape->flywheel_spec());
  spec->validate(rt.world_size);
  check_rank_memory(rt, flywheel_memory_need(*spec, rt.rank));
  return [&rt, shape, spec] { return on_mesh(rt, *shape, [&](Mesh& mesh) { return run_flywheel(*spec, mesh); }); };
}

// A command that runs without a collective (plan, eval): all of it happens in the input phase, so an
// error in it is printed once and ends every rank with 1, whatever it was.
Job plain_job(int code) {
  return [code] { return code; };
}

bool is_command(const std::string& name) {
  return name == "train" || name == "run" || name == "plan" || name == "eval" || name == "serve";
}

// Reads and checks the command line (and for train/run the shape, the data and the memory need):
// everything that can be wrong with the input, found without a collective. A bare `flywheel` prints
// the usage and exits 1, as an unknown command does (with a message).
Job prepare(const Runtime& rt, int argc, char** argv) {
  if (argc < 2) {
    if (rt.rank == 0) std::cerr << kUsage;
    return [] { return kExitError; };
  }
  const std::string command = argv[1];
  if (command == "--help" || command == "-h" || command == "--version") {
    if (rt.rank == 0) std::cout << (command == "--version" ? "flywheel 0.1.0\n" : kUsage);
    return [] { return kExitOk; };
  }
  if (command == "train") return train_job(rt, argc, argv);
  if (command == "run") return run_job(rt, argc, argv);
  if (command == "plan") return plain_job(plan_command(rt, argc, argv));
  if (command == "eval") return plain_job(eval_command(rt, argc, argv));
  if (command == "serve") return plain_job(serve_command(rt, argc, argv));
  FW_INPUT_THROW("unknown command '", command, "'; commands: train, run, plan, eval, serve (see flywheel --help)");
}

// The error line of a failed command: an input error as it is (FLYWHEEL_LOG=debug adds where the
// check is), a usage error with a pointer to --help, an allocation failure with what the memory
// check had planned (std::bad_alloc alone says nothing of what was too large). `name_rank`: say
// which rank it was (the others may have failed differently, or not at all).
void print_failure(const Runtime& rt, const std::exception& e, int argc, char** argv, bool name_rank) {
  const std::string command = argc >= 2 && is_command(argv[1]) ? std::string(" ") + argv[1] : "";
  std::string message = e.what();
  if (dynamic_cast<const UsageError*>(&e)) message += " (see `flywheel" + command + " --help`)";
  if (dynamic_cast<const std::bad_alloc*>(&e))
    message = "out of memory in `flywheel" + command + "`: an allocation failed (std::bad_alloc); " +
              out_of_memory_note() + ". Shrink the model or the batch, or spread it over more ranks";
  std::fprintf(stderr, "flywheel: error%s: %s\n", name_rank ? (" on rank " + std::to_string(rt.rank)).c_str() : "",
               utf8::printable(message).c_str());
  if (const auto* input = dynamic_cast<const InputError*>(&e); input && !input->origin().empty())
    log_debug("the check that refused the input: ", input->origin());
  std::fflush(stderr);
}

// print_failure for an error caught earlier and kept.
void print_failure(const Runtime& rt, const std::exception_ptr& error, int argc, char** argv, bool name_rank) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    print_failure(rt, e, argc, argv, name_rank);
  }
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
    return kExitError;
  }
  configure_logging(rt.world_size > 1 ? rt.rank : -1, log_level_from_environment());
  Job job;
  std::exception_ptr input_error;
  try {
    job = prepare(rt, argc, argv);
  } catch (const std::exception&) {
    input_error = std::current_exception();
  }
  // An input error is the same on every rank (one shape, one command line): the ranks agree on it
  // before any other collective, the lowest failing rank prints it once, and each rank finalizes MPI
  // and exits 1 by itself, with no MPI_Abort (and no launcher banner about an abort).
  if (const int failed = first_failed_rank(input_error != nullptr); failed >= 0) {
    if (rt.rank == failed) print_failure(rt, input_error, argc, argv, failed != 0);
    finalize_runtime();
    return kExitError;
  }
  int code = kExitOk;
  try {
    code = job();
  } catch (const std::exception& e) {
    // With the mesh in place a rank may be alone in its error while the others wait in a collective.
    print_failure(rt, e, argc, argv, rt.world_size > 1);
    if (rt.world_size > 1) abort_job(kExitError);
    code = kExitError;
  }
  finalize_runtime();
  return code;
}
