// The training loop around Trainer: run directory, resume, checkpoints, preemption, progress lines
// with rates and ETA, metrics.jsonl.
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fault_point.h"
#include "core/log.h"
#include "core/threads.h"
#include "launch/signals.h"
#include "parallel/mesh.h"
#include "train/checkpointing.h"
#include "train/metrics_log.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

std::string default_run_name(const std::string& shape_name) {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &utc);
  return shape_name + "-" + stamp;
}

// Rank 0 decides the run name (it may contain the time) and every trainer learns it.
std::string agree_on_run_name(const Shape& shape, Comm& comm) {
  std::string name = shape.train.run_name.empty() ? default_run_name(shape.name) : shape.train.run_name;
  int64_t length = static_cast<int64_t>(name.size());
  comm.broadcast(&length, sizeof(length), 0);
  name.resize(length);
  comm.broadcast(name.data(), length, 0);
  return name;
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

// Prepares the run directory on rank 0: new, or resumed (metrics cut back to the checkpoint).
void prepare_run_dir(const Shape& shape, const std::filesystem::path& dir, std::optional<int64_t> resumed) {
  const std::filesystem::path metrics = dir / "metrics.jsonl";
  if (resumed) {
    truncate_metrics(metrics, *resumed);
    return;
  }
  FW_CHECK(!std::filesystem::exists(metrics) || shape.train.resume == "auto", "run directory '", dir.string(),
           "' already holds a run (metrics.jsonl) and train.resume = never: choose another train.run_name");
  if (std::filesystem::exists(metrics)) {
    log_warn("run directory ", dir.string(), " has metrics but no checkpoint: starting the run over");
    std::filesystem::remove(metrics);
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  FW_CHECK(!ec, "cannot create run directory '", dir.string(), "': ", ec.message());
  std::ofstream(dir / "shape.ini", std::ios::binary) << shape.text;
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

nlohmann::json to_json(const StepMetrics& m, double elapsed) {
  return {{"step", m.step + 1},           {"loss", m.loss},
          {"ce_loss", m.ce_loss},         {"aux_loss", m.aux_loss},
          {"lr", m.lr},                   {"grad_norm", m.grad_norm},
          {"loss_tokens", m.loss_tokens}, {"tokens", m.tokens},
          {"step_seconds", m.seconds},    {"tokens_per_second", m.tokens / m.seconds},
          {"elapsed_seconds", elapsed}};
}

void log_progress(const StepMetrics& m, int64_t steps, double recent_seconds) {
  char line[256];
  std::snprintf(line, sizeof(line), "step %lld/%lld | loss %.4f | lr %.2e | gnorm %.3f | %s tok/s | ETA %s",
                static_cast<long long>(m.step + 1), static_cast<long long>(steps), m.loss, m.lr, m.grad_norm,
                format_rate(m.tokens / m.seconds).c_str(),
                format_duration(recent_seconds * static_cast<double>(steps - m.step - 1)).c_str());
  log_info(line);
}

// True when any trainer rank received a preemption signal (agreed at a step boundary).
bool agree_on_preemption(Comm& comm) {
  double flag = preemption_requested() ? 1.0 : 0.0;
  comm.all_reduce_max(&flag, 1);
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

}  // namespace

int run_training(const Shape& shape, const DataSource& source, Mesh& mesh) {
  Trainer trainer(shape, source, mesh);  // builds and initialises before anything is written
  Comm& comm = mesh.trainers();
  const std::filesystem::path dir =
      std::filesystem::path(shape.train.out_dir) / agree_on_run_name(shape, comm);
  std::optional<int64_t> resumed;
  if (shape.train.resume == "auto") resumed = resume_training(trainer, dir.string());
  const bool writer = comm.rank() == 0;
  std::unique_ptr<MetricsLog> metrics;
  if (writer) {
    prepare_run_dir(shape, dir, resumed);
    metrics = std::make_unique<MetricsLog>((dir / "metrics.jsonl").string());
  }
  comm.barrier();
  const ModelConfig& mc = shape.model;
  const MeshConfig& m = shape.mesh;
  log_info("run ", dir.string(), ": ", shape.name, ", ", mc.total_params() / 1e6, "M parameters (",
           mc.is_moe() ? "MoE" : "dense", "), data ", source.describe(), ", ", shape.train.steps, " steps x ",
           shape.train.global_batch(), " rows x ", shape.train.seq_len, " tokens, mesh pp", m.pp, " x fsdp", m.fsdp,
           " x cp", m.cp, " (ep ", m.ep, "), ", thread_count(), " threads per rank");
  log_info("per-rank parameters + grads + AdamW moments: ", trainer.shards().shard_elements() * 16 / 1048576.0,
           " MiB (", trainer.shards().shard_elements(), " of ", mc.total_params(), " parameters on this rank)");

  const auto start = std::chrono::steady_clock::now();
  double recent_seconds = 0;  // exponential moving average of step time, for the ETA
  int64_t last_saved = resumed.value_or(-1);
  for (int64_t step = resumed.value_or(0); step < shape.train.steps; ++step) {
    fault_point("train.step", comm.rank(), step);
    if (agree_on_preemption(comm)) {
      log_warn(preemption_requested() ? preemption_signal_name() : "a signal on another rank",
               ": checkpointing step ", step, " and exiting for requeue (exit ", kExitPreempted, ")");
      if (last_saved != step && !try_checkpoint(trainer, dir, step)) return kExitCheckpointFailed;
      return kExitPreempted;
    }
    const StepMetrics s = trainer.train_step(step);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    recent_seconds = recent_seconds == 0 ? s.seconds : 0.8 * recent_seconds + 0.2 * s.seconds;
    if (writer) metrics->append(to_json(s, elapsed));
    const bool last = step + 1 == shape.train.steps;
    if ((step + 1) % shape.train.log_every == 0 || last) log_progress(s, shape.train.steps, recent_seconds);
    const int64_t every = shape.train.checkpoint_every;
    if (last || (every > 0 && (step + 1) % every == 0)) {
      if (!try_checkpoint(trainer, dir, step + 1)) return kExitCheckpointFailed;
      last_saved = step + 1;
    }
  }
  log_info("done in ", format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()),
           "; metrics in ", (dir / "metrics.jsonl").string());
  return kExitOk;
}

}  // namespace flywheel
