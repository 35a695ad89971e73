#include "rl/run_flywheel.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fault_point.h"
#include "core/log.h"
#include "core/threads.h"
#include "core/signals.h"
#include "rl/advantages.h"
#include "rl/publish_fault.h"
#include "rl/rl_rows.h"
#include "rl/rollout_coordinator.h"
#include "rl/rollout_rewards.h"
#include "rl/weight_gather.h"
#include "serve/ledger.h"
#include "serve/replica.h"
#include "serve/run_replica.h"
#include "serve/snapshot_publisher.h"
#include "train/checkpointing.h"
#include "data/data_source.h"
#include "train/metrics_log.h"
#include "train/run_support.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

// Train/serve parity of one step (docs/rl.md): d = logp_train - logp_infer over sampled tokens,
// k3 = mean(exp(d) - d - 1) (Schulman 2020), an unbiased, non-negative estimator of KL(infer || train).
struct Parity {
  double k3 = 0, max_abs_d = 0;
};

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

// One RL step's rollouts, as trainer rank 0 sees them, and what the progress line reports.
struct RolloutOutcome {
  LossBatch global;
  RolloutStats stats;
  double reward_mean = 0;
};

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

struct RlStepReport {
  StepMetrics step;
  LossResult loss;
  Parity parity;
  RolloutOutcome rollouts;
  PublishInfo publish;
  bool published = false;
};

nlohmann::json to_json(const RlStepReport& r, double elapsed) {
  nlohmann::json j = {{"step", r.step.step + 1},
                      {"phase", "rl"},
                      {"loss", r.step.loss},
                      {"reward_mean", r.rollouts.reward_mean},
                      {"k3", r.parity.k3},
                      {"max_abs_logprob_diff", r.parity.max_abs_d},
                      {"rollout_tokens", r.rollouts.stats.tokens},
                      {"rollout_tokens_per_second", r.rollouts.stats.tokens_per_second},
                      {"spanning_samples", r.rollouts.stats.spanning},
                      {"hotload_ms", r.rollouts.stats.last_load_ms},
                      {"hotload_fell_back", r.rollouts.stats.fell_back},
                      {"lr", r.step.lr},
                      {"grad_norm", r.step.grad_norm},
                      {"step_seconds", r.step.seconds},
                      {"elapsed_seconds", elapsed}};
  for (const auto& [name, value] : r.loss.metrics) j[name] = value;
  if (r.published) {
    j["publish_kind"] = r.publish.full ? "full" : "delta";
    j["publish_bytes"] = r.publish.file_bytes;
    j["publish_full_bytes"] = r.publish.full_bytes;
    j["publish_ms"] = r.publish.ms;
  }
  return j;
}

std::string bytes_text(double bytes) {
  char text[32];
  if (bytes >= 1048576.0)
    std::snprintf(text, sizeof(text), "%.1f MiB", bytes / 1048576.0);
  else
    std::snprintf(text, sizeof(text), "%.1f KiB", bytes / 1024.0);
  return text;
}

void log_rl_progress(const RlStepReport& r, int64_t steps, double recent_seconds) {
  std::string published = "no publish (last step)";
  if (r.published) {
    char text[96];
    const double percent = r.publish.full_bytes > 0
                               ? 100.0 * static_cast<double>(r.publish.file_bytes) / r.publish.full_bytes : 0.0;
    std::snprintf(text, sizeof(text), "%s %s (%.1f%% of full)", r.publish.full ? "full" : "delta",
                  bytes_text(static_cast<double>(r.publish.file_bytes)).c_str(), percent);
    published = text;
  }
  char line[400];
  std::snprintf(line, sizeof(line),
                "step %lld/%lld rl | reward %.3f | k3 %.2e (max|d| %.1e) | loss %.4f | %s | hot-load %.1f ms | "
                "rollout %s tok/s | ETA %s",
                static_cast<long long>(r.step.step + 1), static_cast<long long>(steps), r.rollouts.reward_mean,
                r.parity.k3, r.parity.max_abs_d, r.step.loss, published.c_str(), r.rollouts.stats.last_load_ms,
                format_rate(r.rollouts.stats.tokens_per_second).c_str(),
                format_duration(recent_seconds * static_cast<double>(steps - r.step.step - 1)).c_str());
  log_info(line);
}

nlohmann::json sft_json(const StepMetrics& m, double elapsed) {
  return {{"step", m.step + 1},       {"phase", "sft"},      {"loss", m.loss},
          {"lr", m.lr},               {"grad_norm", m.grad_norm}, {"step_seconds", m.seconds},
          {"elapsed_seconds", elapsed}};
}

// The trainer ranks' side of the run.
class FlywheelTrainer {
 public:
  FlywheelTrainer(const FlywheelSpec& spec, Mesh& mesh, const DataSource& sft_data, const std::filesystem::path& dir)
      : spec_(spec), mesh_(mesh), trainer_(spec, sft_data, mesh), dir_(dir), comm_(mesh.trainers()),
        loss_(make_loss("grpo", loss_config(spec.rl))) {
    if (comm_.rank() == 0) {
      coordinator_ = std::make_unique<RolloutCoordinator>(spec, mesh.world());
      publisher_ = std::make_unique<SnapshotPublisher>((dir / "publish").string(),
                                                       parse_serve_dtype(spec.rl.serve_dtype), spec.rl.full_every);
      ledger_ = std::make_unique<Ledger>((dir / "ledger.jsonl").string());
      publish_model_ = std::make_unique<Transformer>(spec.model, Transformer::WeightsOnly{DType::kF32});
    }
  }

  Trainer& trainer() { return trainer_; }
  bool writer() const { return comm_.rank() == 0; }

  // The KL penalty's reference policy is the weights at the first RL step, saved once under
  // <run>/reference/ (an ordinary checkpoint, so it reloads onto any mesh). Call before resuming
  // the run itself: loading the reference goes through the trainer's own shards.
  void restore_reference() {
    if (spec_.rl.kl_beta == 0 || !std::filesystem::exists(dir_ / "reference")) return;
    if (resume_training(trainer_, (dir_ / "reference").string())) trainer_.freeze_reference();
  }
  void freeze_reference_at_rl_start(int64_t step) {
    if (spec_.rl.kl_beta == 0 || trainer_.has_reference()) return;
    trainer_.freeze_reference();
    save_training_checkpoint(trainer_, (dir_ / "reference").string(), step);
  }

  // Publishes the weights after `steps_done` steps and tells the replicas.
  PublishInfo publish(int64_t steps_done) {
    gather_full_weights(trainer_, writer() ? &publish_model_->params() : nullptr);
    if (!writer()) return {};
    if (replica_behind_) publisher_->force_full_next();  // a replica fell back: bring it level
    const PublishInfo info = publisher_->publish(steps_done, parameter_tensors(publish_model_->params()));
    maybe_corrupt_published(info);  // FLYWHEEL_CORRUPT_PUBLISH: failure-path tests only
    ledger_->append(ledger_event(info));
    coordinator_->notify_snapshot(steps_done);
    return info;
  }

  void request(int64_t step) {
    if (writer() && step < spec_.train.steps) coordinator_->request(step);
  }

  RlStepReport rl_step(int64_t step) {
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
    CallerBatch caller{mine.rows, mine.seq, mine.tokens, mine.targets};
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
    return report;
  }

  // Rollouts still in flight are received first: a replica blocked sending them could not exit.
  void finish() {
    if (!writer()) return;
    coordinator_->drain();
    coordinator_->shutdown();
  }

 private:
  static LossConfig loss_config(const RlConfig& rl) {
    LossConfig c;
    c.grpo = {rl.clip_low, rl.clip_high, rl.kl_beta, rl.tis_cap};
    return c;
  }

  // Parity and loss metrics exist on the head ranks; rank 0 (which logs) may be on another stage.
  void share_from_head(RlStepReport& report) {
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
  bool replica_behind_ = false;  // rank 0: a replica reported a load that fell short of the step
};

ReplicaOptions replica_options(const FlywheelSpec& spec, int world_rank, const std::filesystem::path& dir) {
  ReplicaOptions options;
  options.model = spec.model;
  options.max_batch = spec.rl.max_batch;
  options.dtype = parse_serve_dtype(spec.rl.serve_dtype);
  options.async_swap = spec.rl.swap == "async";
  options.publish_dir = (dir / "publish").string();
  options.ledger_path = (dir / "ledger.jsonl").string();
  options.replica = world_rank - static_cast<int>(spec.mesh.trainer_ranks());
  return options;
}

int train_and_serve(const FlywheelSpec& spec, Mesh& mesh, const std::filesystem::path& dir) {
  DataConfig sft_data = spec.data;
  sft_data.source = "task:" + spec.rl.task;
  auto source = make_data_source(sft_data, spec.train.seq_len, spec.train.seed);
  FlywheelTrainer run(spec, mesh, *source, dir);
  Trainer& trainer = run.trainer();
  Comm& comm = mesh.trainers();
  std::optional<int64_t> resumed;
  if (spec.train.resume == "auto") {
    run.restore_reference();
    resumed = resume_training(trainer, dir.string());
  }
  std::unique_ptr<MetricsLog> metrics;
  if (run.writer()) {
    prepare_run_dir(spec, dir, resumed);
    metrics = std::make_unique<MetricsLog>((dir / "metrics.jsonl").string());
  }
  comm.control().barrier();
  const RlConfig& rl = spec.rl;
  log_info("run ", dir.string(), ": ", spec.name, ", ", spec.model.total_params() / 1e6, "M parameters, ",
           rl.sft_steps, " SFT + ", spec.train.steps - rl.sft_steps, " GRPO steps on task ", rl.task, ", ",
           rl.prompts_per_step, " prompts x ", rl.group_size, " samples, ", spec.mesh.trainer_ranks(),
           " trainer rank(s) + ", spec.mesh.serve, " replica(s), ", rl.serve_dtype, " serving, ", rl.swap, " swaps");

  const auto start = std::chrono::steady_clock::now();
  double recent = 0;
  int64_t last_saved = resumed.value_or(-1);
  bool rl_started = false;
  for (int64_t step = resumed.value_or(0); step < spec.train.steps; ++step) {
    fault_point("train.step", comm.rank(), step);
    if (agree_on_preemption(comm)) {
      log_warn("preemption: checkpointing step ", step, " and exiting for requeue (exit ", kExitPreempted, ")");
      const bool saved = last_saved == step || try_checkpoint(trainer, dir, step);
      run.finish();
      return saved ? kExitPreempted : kExitCheckpointFailed;
    }
    nlohmann::json record;
    double seconds = 0;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step < rl.sft_steps) {
      trainer.model().set_logit_scale(1.0f);
      const StepMetrics s = trainer.train_step(step);
      seconds = s.seconds;
      recent = recent == 0 ? seconds : 0.8 * recent + 0.2 * seconds;
      record = sft_json(s, elapsed);
      if (run.writer() && (step + 1) % spec.train.log_every == 0) {
        char line[200];
        std::snprintf(line, sizeof(line), "step %lld/%lld sft | loss %.4f | lr %.2e | %s tok/s | ETA %s",
                      static_cast<long long>(step + 1), static_cast<long long>(spec.train.steps), s.loss, s.lr,
                      format_rate(static_cast<double>(s.tokens) / s.seconds).c_str(),
                      format_duration(recent * static_cast<double>(spec.train.steps - step - 1)).c_str());
        log_info(line);
      }
    } else {
      if (!rl_started) {  // first RL step of this process: full snapshot, then the first requests
        trainer.model().set_logit_scale(1.0f / static_cast<float>(rl.temperature));
        trainer.set_learning_rate_override(rl.lr);
        run.freeze_reference_at_rl_start(step);
        run.publish(step);
        run.request(step);
        if (rl.rollout_lag == 1) run.request(step + 1);
        rl_started = true;
      }
      RlStepReport r = run.rl_step(step);
      const bool more = step + 1 < spec.train.steps;
      if (more) {
        r.publish = run.publish(step + 1);
        r.published = true;
        run.request(step + 1 + rl.rollout_lag);
      }
      seconds = r.step.seconds;
      recent = recent == 0 ? seconds : 0.8 * recent + 0.2 * seconds;
      record = to_json(r, elapsed);
      if (run.writer() && ((step + 1) % spec.train.log_every == 0 || !more)) log_rl_progress(r, spec.train.steps, recent);
    }
    if (run.writer()) metrics->append(record);
    const int64_t every = spec.train.checkpoint_every;
    if (step + 1 == spec.train.steps || (every > 0 && (step + 1) % every == 0)) {
      if (!try_checkpoint(trainer, dir, step + 1)) {
        run.finish();
        return kExitCheckpointFailed;
      }
      last_saved = step + 1;
    }
  }
  run.finish();
  log_info("done in ", format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()),
           "; metrics in ", (dir / "metrics.jsonl").string(), ", hot-load history: flywheel-ckpt ledger ", dir.string());
  return kExitOk;
}

}  // namespace

int run_flywheel(const FlywheelSpec& spec, Mesh& mesh) {
  const std::filesystem::path dir =
      std::filesystem::path(spec.train.out_dir) / agree_on_run_name(spec, mesh.world());
  // The directory exists before any rank opens the ledger or publish/ in it.
  if (mesh.world().rank() == 0) {
    std::error_code ec;
    std::filesystem::create_directories(dir / "publish", ec);
    FW_CHECK(!ec, "cannot create run directory '", dir.string(), "': ", ec.message());
  }
  mesh.world().control().barrier();
  if (!mesh.is_trainer()) {
    run_replica(replica_options(spec, mesh.world().rank(), dir), mesh.world());
    return kExitOk;
  }
  return train_and_serve(spec, mesh, dir);
}

}  // namespace flywheel
