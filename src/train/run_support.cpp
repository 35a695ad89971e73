#include "train/run_support.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/checkpoint_dir.h"
#include "ckpt/collective.h"
#include "ckpt/durable_fs.h"
#include "ckpt/state_file.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/signals.h"
#include "core/utc_time.h"
#include "train/checkpointing.h"
#include "train/run_lock.h"

namespace flywheel {
namespace {

// "<shape>-20250101-120000.123-4f2a": UTC to the millisecond, so names sort by start time, then 16
// random bits, so two jobs started in the same millisecond rarely even try the same name.
// claim_run_dir still only takes a name whose directory it creates.
std::string default_run_name(const std::string& shape_name) {
  char suffix[8];
  std::snprintf(suffix, sizeof(suffix), "-%04x", static_cast<unsigned>(std::random_device{}() & 0xffff));
  std::string name = shape_name;  // appended piece by piece: GCC 12 warns falsely (-Wrestrict) on a + chain
  name += '-';
  name += utc_stamp_ms();
  name += suffix;
  return name;
}

// This process's run directory lock (trainer rank 0 only): taken by agree_on_run_name, held until
// the process exits, when the kernel releases it however the process ends.
RunDirLock& run_dir_lock() {
  static RunDirLock lock;
  return lock;
}

// On rank 0: the run name, with its directory created and locked.
std::string claim_run_dir(const TrainSpec& spec) {
  const std::filesystem::path out = spec.train.out_dir;
  std::error_code ec;
  if (!spec.train.run_name.empty()) {
    const std::filesystem::path dir = out / spec.train.run_name;
    const bool created = std::filesystem::create_directories(dir, ec);
    FW_CHECK(!ec, "cannot create run directory '", dir.string(), "': ", ec.message());
    run_dir_lock() = RunDirLock::take(dir, created);
    return spec.train.run_name;
  }
  std::filesystem::create_directories(out, ec);
  FW_CHECK(!ec, "cannot create train.out_dir '", out.string(), "': ", ec.message());
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string name = default_run_name(spec.name);
    // mkdir is atomic, on NFS too: exactly one job creates (and so owns) a default-named directory.
    if (std::filesystem::create_directory(out / name, ec)) {
      run_dir_lock() = RunDirLock::take(out / name, /*created=*/true);
      return name;
    }
    FW_CHECK(!ec, "cannot create run directory '", (out / name).string(), "': ", ec.message());
  }
  FW_THROW("no free default run name under ", out.string(), " after 100 tries; give one with train.run_name");
}

// Keeps the metrics of steps 1..steps_done (a resumed run rewrites what came after its checkpoint),
// atomically: write a temporary file, then rename it over the old one.
void truncate_metrics(const std::filesystem::path& path, int64_t steps_done) {
  if (!std::filesystem::exists(path)) return;
  std::ifstream in(path);
  std::ostringstream kept;
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto record = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (record.is_object() && record.value("step", int64_t{0}) <= steps_done) kept << line << '\n';
  }
  const std::filesystem::path tmp = path.string() + ".tmp";
  std::ofstream(tmp) << kept.str();
  std::filesystem::rename(tmp, path);
}

// shape.ini holds the shape the run trains with now: rewritten (atomically) only when it differs,
// which on a resume means a change train/resume_guard.h allowed and logged.
void record_shape(const std::filesystem::path& file, const std::string& text) {
  std::ifstream in(file, std::ios::binary);
  const bool exists = static_cast<bool>(in);
  std::ostringstream recorded;
  if (exists) recorded << in.rdbuf();
  if (!exists || recorded.str() != text) replace_file_atomically(file.string(), text);
}

}  // namespace

std::string agree_on_run_name(const TrainSpec& spec, Comm& comm) {
  return run_on_root(comm, "claiming the run directory", [&] { return claim_run_dir(spec); });
}

void abandon_unused_run_dir() { run_dir_lock().release_and_remove_if_unused(); }

// Prepares the run directory on rank 0: new, or resumed (metrics cut back to the checkpoint).
void prepare_run_dir(const TrainSpec& spec, const std::filesystem::path& dir, std::optional<int64_t> resumed) {
  const std::filesystem::path metrics = dir / "metrics.jsonl";
  if (resumed) {
    truncate_metrics(metrics, *resumed);
    record_shape(dir / "shape.ini", spec.text);
    return;
  }
  FW_INPUT_CHECK(!std::filesystem::exists(metrics) || spec.train.resume == "auto", "run directory '",
                 dir.string(),
                 "' already holds a run (metrics.jsonl) and train.resume = never: choose another train.run_name");
  if (std::filesystem::exists(metrics)) {
    log_warn("run directory ", dir.string(), " has metrics but no checkpoint: starting the run over");
    std::filesystem::remove(metrics);
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  FW_CHECK(!ec, "cannot create run directory '", dir.string(), "': ", ec.message());
  record_shape(dir / "shape.ini", spec.text);
}

std::string format_rate(double per_second) {
  char text[32];
  if (per_second >= 1e6)
    std::snprintf(text, sizeof(text), "%.2fM", per_second / 1e6);
  else if (per_second >= 1e3)
    std::snprintf(text, sizeof(text), "%.1fk", per_second / 1e3);
  else
    std::snprintf(text, sizeof(text), "%.0f", per_second);
  return text;
}

// True when any trainer rank received a preemption signal (agreed at a step boundary).
bool agree_on_preemption(Comm& comm) {
  double flag = preemption_requested() ? 1.0 : 0.0;
  comm.control().all_reduce_max(&flag, 1);
  return flag > 0;
}

// A failed save ends the run with kExitCheckpointFailed (the previous checkpoint stays intact):
// training on without a way to save could only lose more work. Resubmitting resumes from it.
bool try_checkpoint(Trainer& trainer, const std::filesystem::path& dir, int64_t steps_done) {
  const auto start = std::chrono::steady_clock::now();
  try {
    save_training_checkpoint(trainer, dir.string(), steps_done);
  } catch (const std::exception& e) {
    log_error("checkpoint of step ", steps_done, " failed: ", e.what(),
              "; the previous checkpoint is intact. Stopping (exit ", kExitCheckpointFailed,
              "); free space and resubmit to resume.");
    return false;
  }
  log_info("training stalled ",
           format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()),
           " for the checkpoint of step ", steps_done);
  return true;
}

std::map<std::string, double> head_values_to_rank0(Trainer& trainer, const std::map<std::string, double>& values) {
  Comm& comm = trainer.mesh().trainers();
  const MeshConfig& m = trainer.spec().mesh;
  const int source = static_cast<int>((m.pp - 1) * m.fsdp * m.cp);  // pp is the outermost coordinate
  if (source == 0) return values;
  constexpr int kTag = 2101;
  if (comm.rank() == source) {
    const std::vector<uint8_t> bytes = nlohmann::json::to_cbor(nlohmann::json(values));
    comm.control().send(bytes.data(), static_cast<int64_t>(bytes.size()), 0, kTag);
  }
  if (comm.rank() != 0) return values;
  return nlohmann::json::from_cbor(comm.control().recv(source, kTag)).get<std::map<std::string, double>>();
}

namespace {

// A LoRA run's checkpoints hold adapters, not the base a new run would start from: say so before the load fails
// on the first missing tensor.
void refuse_lora_source(const std::string& run_dir) {
  const std::vector<int64_t> steps = committed_steps(run_dir);
  if (steps.empty()) return;  // the load below says what is missing
  const std::string state = step_dir_path(run_dir, steps.back()) + "/state.h5";
  std::error_code ec;
  if (!std::filesystem::exists(state, ec)) return;
  const StateRecord record = read_state_file(state);
  FW_INPUT_CHECK(!record.state.extra.contains("lora_base"), "train.init_from = '", run_dir,
                 "' is a LoRA run: its checkpoints hold adapters, not a base to start from (they name theirs: ",
                 record.state.extra["lora_base"].value("source", std::string("?")),
                 "); start from that base instead, or from `flywheel-ckpt export ", run_dir,
                 " --format hf --merge --out DIR` with model.from_hf = DIR");
}

}  // namespace

void initialize_from(Trainer& trainer, const std::string& run_dir) {
  refuse_lora_source(run_dir);
  // Under LoRA the checkpoint is the base: its weights load, the adapters keep their fresh initialisation.
  const bool lora = trainer.spec().model.lora.enabled();
  const std::optional<int64_t> step =
      resume_training(trainer, run_dir, lora ? CheckpointPart::kBaseWeights : CheckpointPart::kAll);
  FW_INPUT_CHECK(step.has_value(), "train.init_from = '", run_dir, "' holds no committed checkpoint (expected a run ",
                 "directory with step-N/ and latest)");
  std::fill(trainer.shards().adam_m().begin(), trainer.shards().adam_m().end(), 0.0f);
  std::fill(trainer.shards().adam_v().begin(), trainer.shards().adam_v().end(), 0.0f);
  log_info("starting from the weights of ", run_dir, " step ", *step,
           lora ? " as the frozen base (new adapters)" : " (AdamW moments reset)");
}

}  // namespace flywheel
