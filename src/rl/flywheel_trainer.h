// The trainer ranks' side of a flywheel run (docs/rl.md): rollouts requested from the replicas and
// scored on trainer rank 0, one GRPO step on them, the train/serve parity it measures, and the
// snapshots published after each step. rl/run_flywheel.cpp plugs it into the one run loop.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>

#include "data/data_source.h"
#include "parallel/mesh.h"
#include "rl/flywheel_spec.h"
#include "rl/rollout_coordinator.h"
#include "rl/run_health.h"
#include "serve/ledger.h"
#include "serve/snapshot_publisher.h"
#include "train/loss.h"
#include "train/trainer.h"

namespace flywheel {

// Train/serve parity of one step (docs/rl.md): d = logp_train - logp_infer over sampled tokens,
// k3 = mean(exp(d) - d - 1) (Schulman 2020), an unbiased, non-negative estimator of KL(infer || train).
struct Parity {
  double k3 = 0, max_abs_d = 0;
};

// One RL step's rollouts, as trainer rank 0 sees them, and what the progress line reports.
struct RolloutOutcome {
  LossBatch global;
  RolloutStats stats;
  double reward_mean = 0;
};

struct RlStepReport {
  StepMetrics step;
  LossResult loss;
  Parity parity;
  RolloutOutcome rollouts;
  PublishInfo publish;
  bool published = false;
};

class FlywheelTrainer {
 public:
  FlywheelTrainer(const FlywheelSpec& spec, Mesh& mesh, const DataSource& sft_data, const std::filesystem::path& dir);

  Trainer& trainer() { return trainer_; }
  bool writer() const { return comm_.rank() == 0; }

  // The KL penalty's reference policy is the weights at the first RL step, saved once under
  // <run>/reference/ (an ordinary checkpoint, so it reloads onto any mesh). Call before resuming
  // the run itself: loading the reference goes through the trainer's own shards.
  void restore_reference();
  void freeze_reference_at_rl_start(int64_t step);

  // Publishes the weights after `steps_done` steps and tells the replicas.
  PublishInfo publish(int64_t steps_done);
  // Asks the replicas for the rollouts of `step` (trainer rank 0; steps past the run are skipped).
  void request(int64_t step);
  // One GRPO step on the rollouts of `step` (collective over the trainer ranks).
  RlStepReport rl_step(int64_t step);
  // Rollouts still in flight are received first: a replica blocked sending them could not exit.
  // Then rank 0 sums up the run's fallbacks and exact-mode parity (rl/run_health.h).
  void finish();

 private:
  // Parity and loss metrics exist on the head ranks; rank 0 (which logs) may be on another stage.
  void share_from_head(RlStepReport& report);

  const FlywheelSpec& spec_;
  Mesh& mesh_;
  Trainer trainer_;
  std::filesystem::path dir_;
  Comm& comm_;
  std::unique_ptr<Loss> loss_;
  std::unique_ptr<RolloutCoordinator> coordinator_;
  std::unique_ptr<SnapshotPublisher> publisher_;
  std::unique_ptr<Ledger> ledger_;
  std::unique_ptr<Transformer> publish_model_;
  bool gathered_base_ = false;  // LoRA: publish_model_ holds the frozen base (every rank gathered it once)
  bool replica_behind_ = false;  // rank 0: a replica reported a load that fell short of the step
  RunHealth health_;             // rank 0: fallbacks and exact-mode k3, warned and summed up
};

}  // namespace flywheel
