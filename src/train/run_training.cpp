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
#include "core/signals.h"
#include "parallel/mesh.h"
#include "train/checkpointing.h"
#include "train/metrics_log.h"
#include "train/run_support.h"
#include "train/trainer.h"

namespace flywheel {
namespace {
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

}  // namespace

int run_training(const TrainSpec& spec, const DataSource& source, Mesh& mesh) {
  Trainer trainer(spec, source, mesh);  // builds and initialises before anything is written
  Comm& comm = mesh.trainers();
  const std::filesystem::path dir =
      std::filesystem::path(spec.train.out_dir) / agree_on_run_name(spec, comm);
  std::optional<int64_t> resumed;
  if (spec.train.resume == "auto") resumed = resume_training(trainer, dir.string());
  if (!resumed && !spec.train.init_from.empty()) initialize_from(trainer, spec.train.init_from);
  const bool writer = comm.rank() == 0;
  std::unique_ptr<MetricsLog> metrics;
  if (writer) {
    prepare_run_dir(spec, dir, resumed);
    metrics = std::make_unique<MetricsLog>((dir / "metrics.jsonl").string());
  }
  comm.control().barrier();
  const ModelConfig& mc = spec.model;
  const MeshConfig& m = spec.mesh;
  log_info("run ", dir.string(), ": ", spec.name, ", ", mc.total_params() / 1e6, "M parameters (",
           mc.is_moe() ? "MoE" : "dense", "), data ", source.describe(), ", ", spec.train.steps, " steps x ",
           spec.train.global_batch(), " rows x ", spec.train.seq_len, " tokens, mesh pp", m.pp, " x fsdp", m.fsdp,
           " x cp", m.cp, " (ep ", m.ep, "), ", thread_count(), " threads per rank");
  log_info("per-rank parameters + grads + AdamW moments: ", trainer.shards().shard_elements() * 16 / 1048576.0,
           " MiB (", trainer.shards().shard_elements(), " of ", mc.total_params(), " parameters on this rank)");

  const auto start = std::chrono::steady_clock::now();
  double recent_seconds = 0;  // exponential moving average of step time, for the ETA
  int64_t last_saved = resumed.value_or(-1);
  for (int64_t step = resumed.value_or(0); step < spec.train.steps; ++step) {
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
    const bool last = step + 1 == spec.train.steps;
    if ((step + 1) % spec.train.log_every == 0 || last) log_progress(s, spec.train.steps, recent_seconds);
    const int64_t every = spec.train.checkpoint_every;
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
