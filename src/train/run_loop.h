// The one run loop: every kind of training run (SFT, DPO, the flywheel's SFT warm-up + GRPO) is this
// skeleton with its own steps plugged in.
//
//   build (the caller: the Trainer exists before anything is written); the caller's
//           agree_on_run_name has created and locked the run directory (train/run_support.h)
//   resume (train.resume = auto): checked first (train/resume_guard.h: `latest` names the newest
//           step, the shape is the run's but for the keys a resume may change), then the steps' own
//           state (restore_state: a frozen reference), then the newest good checkpoint of the run
//           directory, whose shape text is checked the same way; a fresh run starts from
//           train.init_from's weights when set, then fresh_start(); a failure here removes a run
//           directory this job created and left empty
//   rank 0 prepares the run directory (shape.ini, metrics.jsonl cut back to the checkpoint)
//   run_dir_ready() (e.g. save the reference once), the start lines
//   for each step: fault point; agree on preemption -> checkpoint, exit 75; step(); metrics.jsonl
//                  line; progress line (every train.log_every and the last, with ETA); checkpoint
//                  every train.checkpoint_every and at the end (a failed save exits 74)
//   the done line; finish() when the loop returns (the flywheel shuts its replicas down); an
//   exception passes by it, to main(), which ends the whole job
//
// Collective over the trainer ranks; returns the exit code (core/signals.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "train/trainer.h"

namespace flywheel {

// What one step reports to the loop.
struct StepReport {
  nlohmann::json record;  // its line of metrics.jsonl (the loop adds "elapsed_seconds")
  double seconds = 0;     // its wall time (the ETA averages these)
  std::string phase;      // "" | "sft" | "dpo" | "rl": the progress line says "step 7/20 rl | ..."
  std::string fields;     // the progress line's fields, "loss 0.1234 | lr 3.00e-03 | ..."
};

class RunSteps {
 public:
  virtual ~RunSteps() = default;
  // After the step count and before the parameter count on the start line ("SFT on task:addition").
  virtual std::string describe() const = 0;
  // One optimizer step (0-based `step`), collective over the trainer ranks.
  virtual StepReport step(int64_t step) = 0;

  // Resume (train.resume = auto): the steps' own saved state, before the run's checkpoint is loaded
  // through the trainer's shards.
  virtual void restore_state(const std::filesystem::path& run_dir) {}
  // A run that resumed nothing, after train.init_from's weights (when set) are loaded.
  virtual void fresh_start() {}
  // The run directory exists (on every trainer rank, after a barrier).
  virtual void run_dir_ready(const std::filesystem::path& run_dir, std::optional<int64_t> resumed) {}
  // When the loop returns (done, preempted, a failed checkpoint).
  virtual void finish() {}
  // Appended to the done line ("hot-load history: flywheel-ckpt ledger <run>").
  virtual std::string done_note(const std::filesystem::path& run_dir) const { return ""; }
};

int run_loop(Trainer& trainer, RunSteps& steps, const std::filesystem::path& run_dir);

// The metrics line and progress fields of an SFT step (flywheel train, the flywheel's warm-up).
StepReport sft_report(const StepMetrics& metrics, const std::string& phase);

}  // namespace flywheel
