#include "rl/flywheel_trainer.h"

#include <cmath>

#include "rl/advantages.h"
#include "rl/publish_fault.h"
#include "rl/rl_rows.h"
#include "rl/rollout_rewards.h"
#include "rl/weight_gather.h"
#include "serve/replica.h"
#include "train/checkpointing.h"
#include "train/loss_batch.h"
#include "train/run_support.h"

namespace flywheel {
namespace {

Parity measure_parity(const LossBatch& local, const std::vector<float>& logp, const Reducer& reduce) {
  double sums[2] = {0, 0}, worst = 0;
  for (size_t t = 0; t < logp.size(); ++t) {
    if (local.mask[t] == 0) continue;
    const double d = static_cast<double>(logp[t]) - static_cast<double>(local.infer_logprob[t]);
    sums[0] += std::exp(d) - d - 1.0;
    sums[1] += 1;
    worst = std::max(worst, std::abs(d));
  }
  reduce.sum(sums, 2);
  reduce.max(&worst, 1);
  return {sums[1] > 0 ? sums[0] / sums[1] : 0.0, worst};
}

RolloutOutcome score_rollouts(const FlywheelSpec& spec, int64_t step, std::vector<RolloutSample> samples,
                              RolloutStats stats, const std::filesystem::path& run_dir) {
  const std::vector<double> rewards = compute_rewards(spec, step, samples, run_dir);
  RolloutOutcome out;
  out.stats = stats;
  for (double r : rewards) out.reward_mean += r / static_cast<double>(rewards.size());
  out.global = rollout_rows(samples, group_normalized_advantages(rewards, spec.rl.group_size), spec.train.seq_len);
  return out;
}

// Rank 0's global batch reaches every trainer (its per-token arrays are fixed-size: rows x seq).
void broadcast_batch(LossBatch& b, int64_t rows, int64_t seq, Comm& comm) {
  const int64_t n = rows * seq;
  b.rows = rows;
  b.seq = seq;
  b.tokens.resize(n);
  b.targets.resize(n);
  b.mask.resize(n);
  b.advantage.resize(n);
  b.infer_logprob.resize(n);
  comm.broadcast(b.tokens.data(), n, DType::kI32, 0);
  comm.broadcast(b.targets.data(), n, DType::kI32, 0);
  comm.broadcast(b.mask.data(), n, DType::kF32, 0);
  comm.broadcast(b.advantage.data(), n, DType::kF32, 0);
  comm.broadcast(b.infer_logprob.data(), n, DType::kF32, 0);
}

LossConfig loss_config(const RlConfig& rl) {
  LossConfig c;
  c.grpo = {rl.clip_low, rl.clip_high, rl.kl_beta, rl.tis_cap};
  return c;
}

}  // namespace

FlywheelTrainer::FlywheelTrainer(const FlywheelSpec& spec, Mesh& mesh, const DataSource& sft_data,
                                 const std::filesystem::path& dir)
    : spec_(spec), mesh_(mesh), trainer_(spec, sft_data, mesh), dir_(dir), comm_(mesh.trainers()),
      loss_(make_loss("grpo", loss_config(spec.rl))), health_(spec.rl.exact()) {
  if (comm_.rank() == 0) {
    coordinator_ = std::make_unique<RolloutCoordinator>(spec, mesh.world());
    publisher_ = std::make_unique<SnapshotPublisher>((dir / "publish").string(), parse_serve_dtype(spec.rl.serve_dtype),
                                                     spec.rl.full_every);
    ledger_ = std::make_unique<Ledger>((dir / "ledger.jsonl").string());
    publish_model_ = std::make_unique<Transformer>(spec.model, Transformer::WeightsOnly{DType::kF32});
  }
}

void FlywheelTrainer::restore_reference() {
  if (spec_.rl.kl_beta == 0) return;
  if (trainer_.reference_is_base()) return;  // LoRA: frozen again at the RL start, from the base itself
  if (!std::filesystem::exists(dir_ / "reference")) return;
  if (resume_training(trainer_, (dir_ / "reference").string())) trainer_.freeze_reference();
}

void FlywheelTrainer::freeze_reference_at_rl_start(int64_t step) {
  if (spec_.rl.kl_beta == 0 || trainer_.has_reference()) return;
  trainer_.freeze_reference();
  if (!trainer_.reference_is_base()) save_training_checkpoint(trainer_, (dir_ / "reference").string(), step);
}

PublishInfo FlywheelTrainer::publish(int64_t steps_done) {
  // LoRA: the frozen base reaches rank 0 once; after that only the adapters travel, and the publisher writes the
  // base's frames of a delta as zero frames without reading them (publish_model_ keeps the base it gathered).
  const bool adapters_only = spec_.model.lora.enabled() && gathered_base_;
  gather_full_weights(trainer_, writer() ? &publish_model_->params() : nullptr, adapters_only);
  gathered_base_ = true;
  if (!writer()) return {};
  if (replica_behind_) publisher_->force_full_next();  // a replica fell back: bring it level
  std::vector<bool> unchanged;
  const ParameterSet& params = publish_model_->params();
  if (adapters_only)
    for (const ParamInfo& info : params.list()) unchanged.push_back(!info.adapter);
  const PublishInfo info = publisher_->publish(steps_done, parameter_tensors(params), unchanged);
  maybe_corrupt_published(info);  // FLYWHEEL_CORRUPT_PUBLISH: failure-path tests only
  ledger_->append(ledger_event(info));
  coordinator_->notify_snapshot(steps_done);
  return info;
}

void FlywheelTrainer::request(int64_t step) {
  if (writer() && step < spec_.train.steps) coordinator_->request(step);
}

RlStepReport FlywheelTrainer::rl_step(int64_t step) {
  RlStepReport report;
  const int64_t rows = spec_.rl.prompts_per_step * spec_.rl.group_size, seq = spec_.train.seq_len;
  if (writer()) {
    RolloutStats stats;
    std::vector<RolloutSample> samples = coordinator_->collect(step, stats);
    replica_behind_ = stats.replica_behind;
    report.rollouts = score_rollouts(spec_, step, std::move(samples), stats, dir_);
  }
  broadcast_batch(report.rollouts.global, rows, seq, comm_);
  comm_.control().broadcast(&report.rollouts.reward_mean, sizeof(double), 0);

  const int64_t fsdp_rank = mesh_.coords().fsdp;
  const LossBatch mine = select_rows(report.rollouts.global, spec_.train.micro_batch, spec_.train.grad_accum,
                                   spec_.mesh.fsdp, fsdp_rank);
  CallerBatch caller{mine.rows, mine.seq, mine.tokens, mine.targets, mine.mask};
  LossBatch local = reorder_tokens(mine, trainer_.local_token_positions(mine.rows, mine.seq),
                                 mine.seq / spec_.mesh.cp);
  if (spec_.rl.kl_beta > 0) local.ref_logprob = trainer_.reference_logprobs(caller);  // collective
  const Reducer reduce = comm_reducer(mesh_.dp());
  Objective objective = [&](const std::vector<float>& logp, std::vector<float>& dloss) {
    report.parity = measure_parity(local, logp, reduce);
    report.loss = loss_->evaluate(local, logp, reduce, dloss);
    return ObjectiveValue{report.loss.loss, {}};
  };
  report.step = trainer_.train_on_batch(step, caller, objective);
  share_from_head(report);
  if (writer()) health_.record(step, report.rollouts.stats.fallbacks, report.parity.k3, report.parity.max_abs_d);
  return report;
}

void FlywheelTrainer::finish() {
  if (!writer()) return;
  coordinator_->drain();
  coordinator_->shutdown();
  health_.log_summary();
}

void FlywheelTrainer::share_from_head(RlStepReport& report) {
  std::map<std::string, double> values = report.loss.metrics;
  values["parity.k3"] = report.parity.k3;
  values["parity.max_abs_d"] = report.parity.max_abs_d;
  values = head_values_to_rank0(trainer_, values);
  if (!writer()) return;
  report.parity = {values.at("parity.k3"), values.at("parity.max_abs_d")};
  values.erase("parity.k3");
  values.erase("parity.max_abs_d");
  report.loss.metrics = values;
}

}  // namespace flywheel
