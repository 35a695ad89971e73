#include "rl/run_flywheel.h"

#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/signals.h"
#include "rl/flywheel_trainer.h"
#include "rl/replica_endpoint.h"
#include "rl/rl_report.h"
#include "serve/run_replica.h"
#include "train/run_loop.h"
#include "train/run_support.h"

namespace flywheel {
namespace {

// The flywheel's steps in the run loop: rl.sft_steps of SFT warm-up on the task, then GRPO steps
// on rollouts of the replicas. The first RL step of a process publishes a full snapshot and asks
// for the first rollouts; every RL step but the last publishes the weights it made and asks for the
// rollouts rl.rollout_lag steps ahead.
class FlywheelSteps final : public RunSteps {
 public:
  FlywheelSteps(const FlywheelSpec& spec, FlywheelTrainer& run, std::string warmup_data)
      : spec_(spec), run_(run), warmup_data_(std::move(warmup_data)) {}

  std::string describe() const override {
    const RlConfig& rl = spec_.rl;
    return detail::concat(
        rl.sft_steps, " SFT steps on ", warmup_data_, " + ", spec_.train.steps - rl.sft_steps, " GRPO steps on ",
        rl.chat_prompts() ? detail::concat("chat prompts ", rl.chat_prompt_file(), " scored by ",
                                           rl.reward == "file" ? "rl.reward_command" : "their answers")
                          : "task " + rl.task,
        ", ", rl.prompts_per_step, " prompts x ", rl.group_size, " samples, ", rl.serve_dtype, " serving, ", rl.swap,
        " swaps");
  }
  void restore_state(const std::filesystem::path&) override { run_.restore_reference(); }
  StepReport step(int64_t step) override {
    Trainer& trainer = run_.trainer();
    if (step < spec_.rl.sft_steps) {
      trainer.model().set_logit_scale(1.0f);
      return sft_report(trainer.train_step(step), "sft");
    }
    if (!rl_started_) start_rl(step);
    RlStepReport r = run_.rl_step(step);
    if (step + 1 < spec_.train.steps) {
      r.publish = run_.publish(step + 1);
      r.published = true;
      run_.request(step + 1 + spec_.rl.rollout_lag);
    }
    return rl_report(r);
  }
  void finish() override { run_.finish(); }
  std::string done_note(const std::filesystem::path& dir) const override {
    return ", hot-load history: flywheel-ckpt ledger " + dir.string();
  }

 private:
  // First RL step of this process: sampling temperature and RL learning rate, the KL reference, a
  // full snapshot, then the first requests.
  void start_rl(int64_t step) {
    run_.trainer().model().set_logit_scale(1.0f / static_cast<float>(spec_.rl.temperature));
    run_.trainer().set_learning_rate_override(spec_.rl.lr);
    run_.freeze_reference_at_rl_start(step);
    run_.publish(step);
    run_.request(step);
    if (spec_.rl.rollout_lag == 1) run_.request(step + 1);
    rl_started_ = true;
  }

  const FlywheelSpec& spec_;
  FlywheelTrainer& run_;
  std::string warmup_data_;  // the SFT source, described
  bool rl_started_ = false;
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
  // The SFT warm-up trains on data.source when that is a file (chat:, jsonl:, text:), else on the
  // RL task's own examples.
  DataConfig sft_data = spec.data;
  if (sft_data.source.rfind("task:", 0) == 0) sft_data.source = "task:" + spec.rl.task;
  auto source = make_data_source(sft_data, spec.train.seq_len, spec.train.seed);
  FlywheelTrainer run(spec, mesh, *source, dir);
  FlywheelSteps steps(spec, run, source->describe());
  return run_loop(run.trainer(), steps, dir);
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
    const ReplicaOptions options = replica_options(spec, mesh.world().rank(), dir);
    run_replica(options, mesh.world(), replica_endpoint(spec, dir.string(), options.replica));
    return kExitOk;
  }
  return train_and_serve(spec, mesh, dir);
}

}  // namespace flywheel
