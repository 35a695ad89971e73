// flywheel-ckpt verify: the checks load_checkpoint makes before it trusts a step (state.h5
// readable, every shard present with the recorded size and XXH3-64, tensors covered exactly once),
// plus each shard's header, reported per shard instead of stopping at the first problem.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/offline.h"
#include "common.h"
#include "core/utf8.h"

namespace flywheel::ckpt_tool {
namespace {

// Prints one step's report; returns whether it passed.
bool report_step(const StepCheck& check) {
  uint64_t bytes = 0;
  for (const ShardCheck& s : check.shards) bytes += s.expected.bytes;
  std::cout << "step " << check.step << " (" << check.dir << "): " << check.shards.size() << " shard(s), "
            << format_bytes(bytes) << "\n";
  std::vector<std::vector<std::string>> rows;
  for (const ShardCheck& s : check.shards)
    rows.push_back({std::filesystem::path(s.path).filename().string(), format_bytes(s.expected.bytes),
                    hex64(s.expected.xxh3_64), s.problem.empty() ? "ok" : "FAILED: " + s.problem});
  if (!rows.empty()) print_table(std::cout, {"file", "size", "xxh3_64", "result"}, rows, {false, true, false, false});
  for (const std::string& p : check.problems) std::cout << "  FAILED: " << p << "\n";
  const bool view_ok = check.view_problem.empty();
  if (!view_ok) std::cout << "  FAILED: " << check.view_problem << "\n";
  const bool ok = check.ok() && view_ok;
  size_t failed_shards = 0;
  for (const ShardCheck& s : check.shards) failed_shards += !s.problem.empty();
  if (ok)
    std::cout << "step " << check.step << ": ok (" << check.shards.size() << " shard(s) verified, "
              << check.index.size() << " arrays covered exactly once)\n";
  else
    std::cout << "step " << check.step << ": FAILED (" << failed_shards << " of " << check.shards.size()
              << " shard(s) failed" << (check.problems.empty() && view_ok ? "" : ", plus step-level problems")
              << ")\n";
  return ok;
}

// What is wrong with RUN_DIR/latest, or "" when it is absent or names a committed step. A `latest`
// that names no committed step makes a resume start elsewhere than the operator expects.
std::string latest_problem(const std::string& run_dir, const std::vector<int64_t>& committed) {
  std::ifstream in(std::filesystem::path(run_dir) / "latest");
  if (!in) return "";
  std::string text;
  std::getline(in, text);
  const std::optional<int64_t> step = parse_step_dir_name(text);
  const std::string next = detail::concat("; a resume starts from step ", committed.back(),
                                          " (the newest); flywheel-ckpt rollback ", run_dir, " --step N sets it");
  if (!step) return detail::concat("latest holds '", utf8::printable(text), "', not a step directory name", next);
  if (!std::binary_search(committed.begin(), committed.end(), *step))
    return detail::concat("latest names step ", *step, ", which is not committed (committed: ", steps_list(committed),
                          ")", next);
  return "";
}

}  // namespace

int verify_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "verify",
      "Verifies a committed step: state.h5 readable, every shard present with exactly the size and\n"
      "XXH3-64 checksum state.h5 records and its own header (rank, world size, step) matching, the\n"
      "shards together covering every tensor row exactly once, model.h5 present. Prints ok/FAILED\n"
      "per shard with the reason.");
  command.positional("RUN_DIR", "the run directory");
  add_step_option(command, "verify");
  command.flag("all", "verify every committed step (excludes --step)");
  add_progress_option(command);
  command.notes("Exit code 0 when everything verified, 1 when anything failed. Never modifies RUN_DIR.");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  if (args.flag("all") && args.has("step")) usage_error("--step and --all exclude each other");

  std::vector<int64_t> steps;
  if (args.flag("all")) {
    choose_step(run_dir, std::nullopt);  // the run-directory errors, if any
    steps = committed_steps(run_dir);
  } else {
    steps = {choose_step(run_dir, step_option(args))};
  }
  uint64_t total = 0;
  for (int64_t s : steps) total += step_check_bytes(run_dir, s);

  std::vector<StepCheck> checks;
  {
    ProgressMeter meter("verify", total, progress_style(args));
    for (int64_t s : steps) checks.push_back(check_step(run_dir, s, [&](uint64_t n) { meter.add(n); }));
    meter.finish();
  }
  int passed = 0;
  for (size_t i = 0; i < checks.size(); ++i) {
    if (i) std::cout << "\n";
    passed += report_step(checks[i]);
  }
  if (steps.size() > 1) std::cout << "\n" << passed << " of " << steps.size() << " steps ok\n";
  const std::string latest = latest_problem(run_dir, committed_steps(run_dir));
  if (!latest.empty()) std::cout << "FAILED: " << latest << "\n";
  return passed == static_cast<int>(steps.size()) && latest.empty() ? kExitOk : kExitFailed;
}

}  // namespace flywheel::ckpt_tool
