#include "train/run_loop.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "ckpt/checkpoint_dir.h"
#include "core/fault_point.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/threads.h"
#include "train/checkpointing.h"
#include "train/hf_import.h"
#include "train/metrics_log.h"
#include "train/resume_guard.h"
#include "train/run_status.h"
#include "train/run_support.h"

namespace flywheel {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Resumes the run, or starts it fresh; returns the steps the run already holds. A resume is
// checked before anything is read (`latest`, shape.ini) and again once the checkpoint is loaded
// (its shape text), and refused before anything is written (train/resume_guard.h).
std::optional<int64_t> resume_or_start(Trainer& trainer, RunSteps& steps, const std::filesystem::path& dir) {
  const TrainSpec& spec = trainer.spec();
  const TrainConfig& train = spec.train;
  Comm& comm = trainer.mesh().trainers();
  std::optional<int64_t> resumed;
  if (train.resume == "auto") check_before_resume(spec, dir, comm);  // cheap checks before any import
  // LoRA: the checkpoints hold adapters only, so the base is established the way a fresh start does before any
  // resume (seed: Fsdp already drew it), and the resume checks it against the one the checkpoint names.
  const bool lora = spec.model.lora.enabled();
  if (lora && !train.init_from.empty()) initialize_from(trainer, train.init_from);
  if (lora && !train.from_hf.empty()) initialize_from_hf(trainer, train.from_hf);
  if (train.resume == "auto") {
    steps.restore_state(dir);
    if (const std::optional<ResumedCheckpoint> loaded = resume_checkpoint(trainer, dir.string())) {
      check_resumed_shape(spec, dir, *loaded, comm);
      resumed = loaded->step;
    }
  }
  if (!resumed) {
    if (!lora && !train.init_from.empty()) initialize_from(trainer, train.init_from);
    if (!lora && !train.from_hf.empty()) initialize_from_hf(trainer, train.from_hf);
    steps.fresh_start();
  }
  return resumed;
}

void log_start(Trainer& trainer, const RunSteps& steps, const std::filesystem::path& dir) {
  const TrainSpec& spec = trainer.spec();
  const ModelConfig& mc = spec.model;
  const MeshConfig& m = spec.mesh;
  log_info("run ", dir.string(), ": ", spec.name, ", ", mc.total_params() / 1e6, "M parameters (",
           mc.is_moe() ? "MoE" : "dense", "), ", steps.describe(), ", ", spec.train.steps, " steps x ",
           spec.train.global_batch(), " rows x ", spec.train.seq_len, " tokens, mesh pp", m.pp, " x fsdp", m.fsdp,
           " x cp", m.cp, " (ep ", m.ep, ")", m.serve > 0 ? " + " + std::to_string(m.serve) + " replica(s)" : "",
           ", ", thread_count(), " threads per rank");
  if (mc.lora.enabled())
    log_info(
        "LoRA rank ", mc.lora.rank, " (alpha ", mc.lora.alpha, mc.lora.use_rslora ? ", rsLoRA" : "", ", scale ",
        mc.lora.scale(), ") on ", mc.lora.targets, ": ", mc.lora.adapter_params(mc), " adapter parameters (",
        std::round(1e4 * static_cast<double>(mc.lora.adapter_params(mc)) / static_cast<double>(mc.total_params())) /
            100.0,
        "% of the base), the base frozen");
  // Values: 4 B per parameter held; gradients and AdamW m, v: 12 B per trainable one (all, or LoRA's adapters).
  const int64_t held = trainer.shards().shard_elements(), trainable = trainer.shards().trainable_elements();
  log_info("per-rank parameters + grads + AdamW moments: ", static_cast<double>(held * 4 + trainable * 12) / 1048576.0,
           " MiB (", held, " parameters on this rank, ", trainable, " of them trained)");
}

void log_progress(const StepReport& r, int64_t step, int64_t steps, double recent_seconds) {
  char head[64];
  std::snprintf(head, sizeof(head), "step %lld/%lld%s%s", static_cast<long long>(step + 1),
                static_cast<long long>(steps), r.phase.empty() ? "" : " ", r.phase.c_str());
  log_info(head, " | ", r.fields, " | ETA ", format_duration(recent_seconds * static_cast<double>(steps - step - 1)));
}

// The checkpoint that ends a preempted run (unless the last step just saved one); the exit code.
int stop_for_preemption(Trainer& trainer, const std::filesystem::path& dir, int64_t step, int64_t last_saved) {
  log_warn(preemption_requested() ? preemption_signal_name() : "a signal on another rank", ": checkpointing step ",
           step, " and exiting for requeue (exit ", kExitPreempted, ")");
  if (last_saved != step && !try_checkpoint(trainer, dir, step)) return kExitCheckpointFailed;
  return kExitPreempted;
}

int train_steps(Trainer& trainer, RunSteps& steps, const std::filesystem::path& dir, std::optional<int64_t> resumed,
                MetricsLog* metrics) {
  const TrainConfig& train = trainer.spec().train;
  Comm& comm = trainer.mesh().trainers();
  const auto start = std::chrono::steady_clock::now();
  double recent_seconds = 0;  // exponential moving average of step time, for the ETA
  int64_t last_saved = resumed.value_or(-1);
  for (int64_t step = resumed.value_or(0); step < train.steps; ++step) {
    fault_point("train.step", comm.rank(), step);
    if (agree_on_preemption(comm)) return stop_for_preemption(trainer, dir, step, last_saved);
    StepReport report = steps.step(step);
    report.record["elapsed_seconds"] = seconds_since(start);
    recent_seconds = recent_seconds == 0 ? report.seconds : 0.8 * recent_seconds + 0.2 * report.seconds;
    if (metrics) metrics->append(report.record);
    const bool last = step + 1 == train.steps;
    if ((step + 1) % train.log_every == 0 || last) log_progress(report, step, train.steps, recent_seconds);
    const int64_t every = train.checkpoint_every;
    if (last || (every > 0 && (step + 1) % every == 0)) {
      if (!try_checkpoint(trainer, dir, step + 1)) return kExitCheckpointFailed;
      last_saved = step + 1;
    }
  }
  log_info("done in ", format_duration(seconds_since(start)), "; metrics in ", (dir / "metrics.jsonl").string(),
           steps.done_note(dir));
  return kExitOk;
}

// status.json at the end of the loop: the state its exit code means, at the last committed step.
void record_end(const std::filesystem::path& dir, int64_t target, int code, const std::string& error) {
  RunStatus status;
  status.state = error.empty() ? run_state_of_exit(code) : "failed";
  status.train_steps = target;
  status.step = read_latest_step(dir.string()).value_or(0);
  if (error.empty()) status.exit_code = code;
  if (code == kExitPreempted) status.signal = preemption_signal_name();
  status.detail = error;
  write_run_status(dir, status);
}

}  // namespace

int run_loop(Trainer& trainer, RunSteps& steps, const std::filesystem::path& dir) {
  Comm& comm = trainer.mesh().trainers();
  std::optional<int64_t> resumed;
  try {
    resumed = resume_or_start(trainer, steps, dir);
  } catch (...) {
    if (comm.rank() == 0) abandon_unused_run_dir();  // e.g. a bad train.init_from: leave nothing behind
    throw;
  }
  if (comm.rank() == 0 && resumed == trainer.spec().train.steps)
    log_warn("run ", dir.string(), " already holds all train.steps = ", *resumed,
             " steps: nothing to train (raise train.steps to extend it)");
  std::unique_ptr<MetricsLog> metrics;
  if (comm.rank() == 0) {
    prepare_run_dir(trainer.spec(), dir, resumed);
    if (!resumed && !trainer.spec().train.from_hf.empty()) copy_hf_files(trainer.spec().train.from_hf, dir.string());
    metrics = std::make_unique<MetricsLog>((dir / "metrics.jsonl").string());
  }
  const int64_t target = trainer.spec().train.steps;
  if (comm.rank() == 0) {
    RunStatus running;
    running.state = "running";
    running.step = resumed.value_or(0);
    running.train_steps = target;
    write_run_status(dir, running);
  }
  comm.control().barrier();
  steps.run_dir_ready(dir, resumed);
  log_start(trainer, steps, dir);
  // An exception passes by finish(): main() ends the whole job, and a drain could wait on a rank
  // that is gone. Rank 0 records it first (status.json), as it records every other end.
  int code = kExitError;
  try {
    code = train_steps(trainer, steps, dir, resumed, metrics.get());
  } catch (const std::exception& e) {
    if (comm.rank() == 0) record_end(dir, target, code, e.what());
    throw;
  }
  if (comm.rank() == 0) record_end(dir, target, code, "");
  steps.finish();
  return code;
}

StepReport sft_report(const StepMetrics& m, const std::string& phase) {
  StepReport r;
  r.record = {{"step", m.step + 1},          {"phase", "sft"},
              {"loss", m.loss},              {"ce_loss", m.ce_loss},
              {"aux_loss", m.aux_loss},      {"lr", m.lr},
              {"grad_norm", m.grad_norm},    {"loss_tokens", m.loss_tokens},
              {"tokens", m.tokens},          {"step_seconds", m.seconds},
              {"tokens_per_second", m.tokens / m.seconds}};
  r.seconds = m.seconds;
  r.phase = phase;
  char fields[160];
  std::snprintf(fields, sizeof(fields), "loss %.4f | lr %.2e | gnorm %.3f | %s tok/s", m.loss, m.lr, m.grad_norm,
                format_rate(static_cast<double>(m.tokens) / m.seconds).c_str());
  r.fields = fields;
  return r;
}

}  // namespace flywheel
