// flywheel-ckpt: offline tool for Flywheel checkpoints (format: docs/checkpoint-format.md).
//
//   flywheel-ckpt list    [DIR] [--json]
//   flywheel-ckpt inspect RUN_DIR [--step N] [--json]
//   flywheel-ckpt verify  RUN_DIR [--step N | --all]
//   flywheel-ckpt diff    RUN_A[:STEP] RUN_B[:STEP] [--moments] [--fail-above X]
//   flywheel-ckpt reshard RUN_DIR --out OUT_RUN_DIR --mesh pp=2,fsdp=2,cp=1,ep=1 [--step N]
//   flywheel-ckpt export  RUN_DIR --format safetensors --out FILE [--step N]
//   flywheel-ckpt ledger  RUN_DIR
//   flywheel-ckpt publish RUN_DIR --out DIR [--step N ...]
//   flywheel-ckpt rollback RUN_DIR --step N
//
// Runs in one process without MPI. Reading never modifies the run directory (see ckpt/offline.h);
// reshard writes a new one, rollback moves a run's newer steps aside.
// Exit codes: 0 ok, 1 error or failed check, 2 usage error.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "common.h"
#include "core/log.h"
#include "core/utf8.h"

namespace flywheel::ckpt_tool {
namespace {

constexpr const char* kUsage =
    "usage: flywheel-ckpt <command> [options]\n"
    "\n"
    "Offline tool for Flywheel checkpoint run directories (docs/checkpoint-format.md).\n"
    "\n"
    "commands:\n"
    "  list    [DIR] [--json]                         the runs under DIR (default checkpoints/): state, steps, size\n"
    "  inspect RUN_DIR [--step N] [--json]            steps, mesh, shape and tensors of a checkpoint\n"
    "  verify  RUN_DIR [--step N | --all]             check every shard's size and XXH3-64 checksum\n"
    "  diff    RUN_A[:STEP] RUN_B[:STEP]              per-tensor max abs / rel difference\n"
    "  reshard RUN_DIR --out DIR --mesh pp=..,fsdp=.. rewrite a step laid out for another mesh\n"
    "  export  RUN_DIR --format safetensors --out F   weights as a Hugging Face safetensors file\n"
    "  ledger  RUN_DIR                                the hot-load ledger (ledger.jsonl)\n"
    "  publish RUN_DIR --out DIR [--step N ...]       checkpoints as serving snapshots (full, then deltas)\n"
    "  rollback RUN_DIR --step N                      resume from step N: newer steps moved aside\n"
    "\n"
    "Run `flywheel-ckpt <command> --help` for a command's options.\n"
    "Exit codes: 0 ok, 1 error or failed check, 2 usage error.\n";

struct Command {
  const char* name;
  int (*run)(int, char**);
};
constexpr Command kCommands[] = {
    {"list", list_command},     {"inspect", inspect_command},   {"verify", verify_command},
    {"diff", diff_command},     {"reshard", reshard_command},   {"export", export_command},
    {"ledger", ledger_command}, {"rollback", rollback_command}, {"publish", publish_command}};

int dispatch(int argc, char** argv, std::string& command) {
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  command = argv[1];
  if (command == "--help" || command == "-h" || command == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  for (const Command& c : kCommands)
    if (command == c.name) return c.run(argc - 1, argv + 1);  // argv[0] becomes the command name
  command.clear();
  usage_error("unknown command '", argv[1],
              "'; commands: list, inspect, verify, diff, reshard, export, ledger, rollback, publish");
}

}  // namespace
}  // namespace flywheel::ckpt_tool

int main(int argc, char** argv) {
  using namespace flywheel;
  using namespace flywheel::ckpt_tool;
  configure_logging(-1, LogLevel::kWarn);  // the library's info lines would clutter the tool's output
  std::string command;
  try {
    return dispatch(argc, argv, command);
  } catch (const UsageError& e) {
    const std::string help = command.empty() ? "flywheel-ckpt --help" : "flywheel-ckpt " + command + " --help";
    std::fprintf(stderr, "flywheel-ckpt%s%s: usage error: %s (see `%s`)\n", command.empty() ? "" : " ",
                 command.c_str(), utf8::printable(e.what()).c_str(), help.c_str());
    return kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "flywheel-ckpt%s%s: error: %s\n", command.empty() ? "" : " ", command.c_str(),
                 utf8::printable(e.what()).c_str());
    return kExitFailed;
  }
}
