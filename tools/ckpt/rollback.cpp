// flywheel-ckpt rollback RUN_DIR --step N: makes committed step N, on purpose, the step the next
// resume starts from. Every committed step after N is moved (renamed, never deleted) into
// RUN_DIR/rolled-back-<UTC time>/ together with copies of metrics.jsonl and shape.ini as they are
// now (the resume cuts metrics.jsonl back to step N), then `latest` is set to N. With N the newest
// step it only rewrites `latest` (what a resume asks for when `latest` names an older step).
//
// Refused while a job holds the run directory's lock (train/run_lock.h); the tool holds the lock
// itself while it works, so no job starts on a half-done rollback. Crash-safe by its order: the
// steps are moved first (each rename durable), `latest` last; interrupted, it leaves `latest` older
// than a remaining step, which the next resume refuses, pointing at this command again.
#include <filesystem>
#include <iostream>
#include <vector>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/durable_fs.h"
#include "common.h"
#include "core/utc_time.h"
#include "train/run_lock.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

// RUN_DIR/rolled-back-20250101-120000.123, created (a new name if that one exists).
fs::path create_rollback_dir(const fs::path& run_dir) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = "rolled-back-" + utc_stamp_ms();
    if (attempt > 0) name += detail::concat("-", attempt);
    const fs::path dir = run_dir / name;
    std::error_code ec;
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) fail("cannot create ", dir.string(), ": ", ec.message());
  }
  fail("cannot find a free rolled-back-<time> directory name in ", run_dir.string());
}

// Moves the steps after `step` aside with copies of the run's records; returns where they went.
fs::path move_newer_steps(const fs::path& run_dir, const std::vector<int64_t>& newer) {
  const fs::path aside = create_rollback_dir(run_dir);
  for (const char* record : {"metrics.jsonl", "shape.ini"}) {
    std::error_code ec;
    if (fs::exists(run_dir / record, ec)) fs::copy_file(run_dir / record, aside / record);
  }
  fsync_directory(aside.string());
  for (int64_t s : newer) {
    rename_durably(step_dir_path(run_dir.string(), s), (aside / step_dir_name(s)).string());
    std::cout << "moved step " << s << " to " << (aside / step_dir_name(s)).string() << "\n";
  }
  return aside;
}

}  // namespace

int rollback_command(int argc, char** argv) {
  CommandLine command = subcommand(
      "rollback",
      "Makes committed step N the step the next resume starts from, deleting nothing: every committed\n"
      "step after N is moved into RUN_DIR/rolled-back-<UTC time>/ with copies of metrics.jsonl and\n"
      "shape.ini, and `latest` is set to N. With N the newest step it only rewrites `latest`.");
  command.positional("RUN_DIR", "the run directory");
  command.option<std::string>("step", "N", "the committed step to go back to (required)");
  add_progress_option(command);
  command.notes("Step N is verified first. Refused while a job holds the run directory (its .lock).\n"
                "To undo: move the step directories back from rolled-back-<time>/ and rerun with the newest.");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const std::string run_dir = args.positionals()[0];
  const std::optional<int64_t> requested = step_option(args);
  if (!requested) usage_error("missing --step N: the committed step to go back to");

  const int64_t step = choose_step(run_dir, requested);
  std::string holder;
  const std::optional<RunDirLock> lock = RunDirLock::try_take(run_dir, /*created=*/false, &holder);
  if (!lock) fail("run directory ", run_dir, " is in use by a job: ", holder, "; stop it before rolling back");
  open_verified_step(run_dir, step, "rollback: verifying", progress_style(args));

  std::vector<int64_t> newer;
  for (int64_t s : committed_steps(run_dir))
    if (s > step) newer.push_back(s);
  const std::optional<int64_t> latest = read_latest_step(run_dir);
  if (!newer.empty()) {
    const fs::path aside = move_newer_steps(run_dir, newer);
    std::cout << "copied metrics.jsonl and shape.ini to " << aside.string() << " (the resume cuts metrics.jsonl back to "
              << "step " << step << ")\n";
  }
  write_latest(run_dir, step);
  std::cout << "latest: " << step_dir_name(step) << " (was " << (latest ? step_dir_name(*latest) : "not set")
            << "); the next resume of " << run_dir << " starts from step " << step << "\n";
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
