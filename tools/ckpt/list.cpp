// flywheel-ckpt list [DIR]: the runs under DIR (default checkpoints/, where `flywheel train` puts
// them), one line each: objective and model, mesh, committed steps, the last one of train.steps, the
// state and the size on disk. DIR may also be one run directory.
//
// The state, in order of evidence: a held run directory lock (train/run_lock.h) is a job running now,
// named by its holder; else the run's status.json (train/run_status.h) says how it ended; a run
// from before status.json is finished when it holds train.steps, else stopped. Reading takes no
// lock a job could trip over for longer than a microsecond (see run_dir_lock_held) and changes
// nothing in the directories.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "common.h"
#include "shape_text.h"
#include "train/run_lock.h"
#include "train/run_status.h"

namespace flywheel::ckpt_tool {
namespace {
namespace fs = std::filesystem;

struct RunListing {
  std::string name, path;
  std::string objective, model, mesh, shape_error;
  std::optional<int64_t> train_steps;
  std::vector<int64_t> steps;
  std::optional<int64_t> latest;
  std::string state, holder;
  std::optional<RunStatus> status;
  std::vector<std::string> stale;
  uint64_t bytes = 0;
};

// A directory `flywheel train` made: it records its shape or a checkpoint, or at least metrics.
bool is_run_dir(const fs::path& dir) {
  std::error_code ec;
  for (const char* marker : {"shape.ini", "latest", "metrics.jsonl", ".lock"})
    if (fs::exists(dir / marker, ec)) return true;
  return !committed_steps(dir.string()).empty();
}

// Every regular file below dir (symbolic links are not followed: their targets are elsewhere).
uint64_t tree_bytes(const fs::path& dir) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) bytes += it->file_size(ec);
  return bytes;
}

void read_shape(RunListing& run) {
  const fs::path file = fs::path(run.path) / "shape.ini";
  std::error_code ec;
  if (!fs::exists(file, ec)) {
    run.shape_error = "no shape.ini";
    return;
  }
  try {
    const Shape shape = load_shape(file.string(), {}, FromHf::kAsRecorded);
    run.objective = shape.train.objective;
    run.model =
        detail::concat(shape.model.is_moe() ? "moe " : "dense ", shape.model.n_layers, "x", shape.model.d_model);
    run.mesh = detail::concat("pp=", shape.mesh.pp, " fsdp=", shape.mesh.fsdp, " cp=", shape.mesh.cp,
                              " ep=", shape.mesh.ep, " serve=", shape.mesh.serve);
    run.train_steps = shape.train.steps;
  } catch (const std::exception& e) {
    run.shape_error = without_source_location(e.what());
  }
}

std::string ended_state(const RunListing& run) {
  const RunStatus& s = *run.status;
  const std::string at = detail::concat(" at step ", s.step);
  if (s.state == "running") {  // it never wrote its end: the checkpoints say how far it got
    const std::string last = run.steps.empty() ? "before a checkpoint"
                                               : detail::concat("at step ", run.latest.value_or(run.steps.back()));
    return "interrupted " + last + " (no clean stop: killed, out of memory or a node failure)";
  }
  if (s.state == "finished") return "finished";
  if (s.state == "preempted") return "preempted" + at + (s.signal.empty() ? "" : " (" + s.signal + ")");
  if (s.state == "checkpoint_failed") return "checkpoint failed" + at + " (exit 74)";
  if (s.state == "failed") return "failed" + at + (s.detail.empty() ? "" : ": " + s.detail);
  return s.state + at;
}

std::string derived_state(const RunListing& run) {
  if (run.steps.empty()) return "no checkpoint";
  const int64_t last = run.latest.value_or(run.steps.back());
  if (run.train_steps && last >= *run.train_steps) return "finished";
  return detail::concat("stopped at step ", last);
}

RunListing list_run(const fs::path& dir) {
  RunListing run;
  run.name = dir.filename().string();
  run.path = dir.string();
  read_shape(run);
  run.steps = committed_steps(run.path);
  try {
    run.latest = read_latest_step(run.path);
  } catch (const std::exception&) {
    run.latest.reset();  // an unreadable `latest`: verify says what is wrong with it
  }
  run.stale = stale_step_dirs(run.path);
  run.status = read_run_status(dir);
  if (run_dir_lock_held(dir)) {
    run.holder = describe_lock_holder(dir);
    run.state = "running";
  } else {
    run.state = run.status ? ended_state(run) : derived_state(run);
  }
  run.bytes = tree_bytes(dir);
  return run;
}

std::vector<RunListing> list_runs(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(dir.string(), " is not a directory (list takes a folder of runs or one run)");
  if (is_run_dir(dir)) return {list_run(dir)};
  std::vector<fs::path> runs;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec))
    if (entry.is_directory(ec) && is_run_dir(entry.path())) runs.push_back(entry.path());
  if (ec) fail("cannot read ", dir.string(), ": ", ec.message());
  std::sort(runs.begin(), runs.end());
  std::vector<RunListing> listings;
  for (const fs::path& run : runs) listings.push_back(list_run(run));
  return listings;
}

std::string last_of_target(const RunListing& run) {
  const std::string last = run.steps.empty() ? "-" : std::to_string(run.latest.value_or(run.steps.back()));
  return last + "/" + (run.train_steps ? std::to_string(*run.train_steps) : "?");
}

nlohmann::json to_json(const RunListing& run) {
  nlohmann::json j = {{"name", run.name},   {"path", run.path},   {"steps", run.steps},
                      {"state", run.state}, {"bytes", run.bytes}, {"stale_step_dirs", run.stale}};
  j["objective"] = run.objective.empty() ? nlohmann::json() : nlohmann::json(run.objective);
  j["model"] = run.model.empty() ? nlohmann::json() : nlohmann::json(run.model);
  j["mesh"] = run.mesh.empty() ? nlohmann::json() : nlohmann::json(run.mesh);
  j["train_steps"] = run.train_steps ? nlohmann::json(*run.train_steps) : nlohmann::json();
  j["latest"] = run.latest ? nlohmann::json(*run.latest) : nlohmann::json();
  if (!run.shape_error.empty()) j["shape_error"] = run.shape_error;
  if (!run.holder.empty()) j["holder"] = run.holder;
  if (run.status) {
    j["status"] = {{"state", run.status->state}, {"step", run.status->step}, {"since", run.status->since}};
    if (run.status->exit_code) j["status"]["exit_code"] = *run.status->exit_code;
  }
  return j;
}

void print_text(const fs::path& dir, const std::vector<RunListing>& runs) {
  if (runs.empty()) {
    std::cout << "no runs under " << dir.string() << "\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  uint64_t total = 0;
  for (const RunListing& run : runs) {
    const std::string shape = run.shape_error.empty() ? run.objective + " " + run.model : "? (" + run.shape_error + ")";
    rows.push_back({run.name, shape, run.mesh.empty() ? "?" : run.mesh, std::to_string(run.steps.size()),
                    last_of_target(run), run.state, format_bytes(run.bytes)});
    total += run.bytes;
  }
  print_table(std::cout, {"RUN", "SHAPE", "MESH", "STEPS", "LAST", "STATE", "SIZE"}, rows,
              {false, false, false, true, true, false, true}, "");
  for (const RunListing& run : runs) {
    if (!run.holder.empty()) std::cout << run.name << ": held by " << run.holder << "\n";
    for (const std::string& stale : run.stale)
      std::cout << run.name << ": " << stale
                << " was left by an interrupted save or delete (the next run removes it)\n";
  }
  std::cout << runs.size() << (runs.size() == 1 ? " run, " : " runs, ") << format_bytes(total) << "\n";
}

}  // namespace

int list_command(int argc, char** argv) {
  CommandLine command =
      subcommand("list",
                 "The runs under DIR (default checkpoints/), or run directory DIR itself: shape, mesh, committed\n"
                 "steps, the last committed step of train.steps, state and size. States: running (a job holds the\n"
                 "run's lock; its holder is named), finished, preempted at step N (resume with the same\n"
                 "train.run_name), interrupted at step N (ended without a clean stop), failed, checkpoint failed,\n"
                 "stopped at step N (a run from before status.json), no checkpoint.");
  command.optional_positional("DIR", "a folder of run directories, or one run directory (default checkpoints)");
  command.flag("json", "print a JSON array, one object per run");
  const ParsedArgs args = command.parse(argc, argv);
  if (args.help()) return print_help(command);
  const fs::path dir = args.positionals().empty() ? fs::path("checkpoints") : fs::path(args.positionals()[0]);
  const std::vector<RunListing> runs = list_runs(dir);
  if (args.flag("json")) {
    nlohmann::json out = nlohmann::json::array();
    for (const RunListing& run : runs) out.push_back(to_json(run));
    std::cout << out.dump(2) << "\n";
  } else {
    print_text(dir, runs);
  }
  return kExitOk;
}

}  // namespace flywheel::ckpt_tool
