// `flywheel train` with train.objective = dpo: Direct Preference Optimization (Rafailov et al. 2023)
// on preference pairs from JSONL ({"prompt", "chosen", "rejected"} per line), against a frozen
// reference policy: the weights the run starts from (train.init_from's checkpoint, or the seed's
// initialisation), saved once under <run>/reference/ so a resumed run compares with the same one.
//
// Step s takes the pairs at global indices [s P, (s + 1) P), P = global batch / 2, through a fresh
// permutation per epoch (as the SFT sampler does): rows 2k, 2k + 1 are pair k's chosen and rejected
// sides, so the fsdp split of a micro-batch (an even number of rows per rank) keeps pairs together.
#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fault_point.h"
#include "core/log.h"
#include "core/signals.h"
#include "train/loss.h"
#include "data/preference_data.h"
#include "train/preference_rows.h"
#include "train/checkpointing.h"
#include "train/metrics_log.h"
#include "train/run_preference.h"
#include "train/run_support.h"
#include "data/sampler.h"

namespace flywheel {
namespace {

std::vector<int64_t> pairs_of_step(const TrainSpec& spec, int64_t step, int64_t n_pairs) {
  const int64_t per_step = spec.train.global_batch() / 2;
  std::vector<int64_t> indices;
  int64_t cached_epoch = -1;
  std::vector<int64_t> permutation;
  for (int64_t k = 0; k < per_step; ++k) {
    const int64_t g = step * per_step + k, epoch = g / n_pairs;
    if (epoch != cached_epoch) {
      permutation = epoch_permutation(spec.train.seed, epoch, n_pairs);
      cached_epoch = epoch;
    }
    indices.push_back(permutation[g % n_pairs]);
  }
  return indices;
}

struct DpoStep {
  StepMetrics step;
  LossResult loss;
};

DpoStep dpo_step(Trainer& trainer, const TrainSpec& spec, const Loss& dpo, const std::vector<PreferencePair>& pairs,
                 int64_t step) {
  const LossBatch global =
      make_preference_batch(pairs, pairs_of_step(spec, step, static_cast<int64_t>(pairs.size())), spec.train.seq_len);
  LossBatch local = select_rows(global, spec.train.micro_batch, spec.train.grad_accum, spec.mesh.fsdp,
                              trainer.mesh().coords().fsdp);
  // Pair ids must be unique on each rank; select_rows keeps whole pairs, so renumber them locally.
  for (size_t r = 0; r < local.pair_id.size(); ++r) local.pair_id[r] = static_cast<int64_t>(r / 2);
  const CallerBatch caller{local.rows, local.seq, local.tokens, local.targets};
  local.ref_logprob = trainer.reference_logprobs(caller);
  DpoStep out;
  const Reducer reduce = comm_reducer(trainer.mesh().dp());
  Objective objective = [&](const std::vector<float>& logp, std::vector<float>& dloss) {
    out.loss = dpo.evaluate(local, logp, reduce, dloss);
    return ObjectiveValue{out.loss.loss, {}};
  };
  out.step = trainer.train_on_batch(step, caller, objective);
  out.loss.metrics = head_values_to_rank0(trainer, out.loss.metrics);  // rank 0 logs them
  return out;
}

nlohmann::json dpo_json(const DpoStep& s, double elapsed) {
  nlohmann::json j = {{"step", s.step.step + 1}, {"phase", "dpo"},          {"loss", s.step.loss},
                      {"lr", s.step.lr},         {"grad_norm", s.step.grad_norm}, {"step_seconds", s.step.seconds},
                      {"elapsed_seconds", elapsed}};
  for (const auto& [name, value] : s.loss.metrics) j[name] = value;
  return j;
}

}  // namespace

void check_preference_spec(const TrainSpec& spec, const DpoConfig& dpo) {
  const MeshConfig& mesh = spec.mesh;
  FW_CHECK(mesh.cp == 1, "train.objective = dpo with mesh.cp = ", mesh.cp,
           ": DPO sums each row's logprobs on one rank; use mesh.cp = 1");
  FW_CHECK((spec.train.micro_batch / mesh.fsdp) % 2 == 0, "train.objective = dpo: train.micro_batch / mesh.fsdp = ",
           spec.train.micro_batch / mesh.fsdp, " rows per rank must be even (a pair's chosen and rejected rows stay together)");
  FW_CHECK(dpo.beta > 0, "rl.dpo_beta = ", dpo.beta, ": must be > 0");
}

int run_preference_training(const TrainSpec& spec, const std::string& data_path, const DpoConfig& dpo_config,
                            Mesh& mesh) {
  const std::vector<PreferencePair> pairs = read_preference_jsonl(data_path, spec.train.seq_len);
  Trainer trainer(spec, mesh);
  Comm& comm = mesh.trainers();
  const std::filesystem::path dir = std::filesystem::path(spec.train.out_dir) / agree_on_run_name(spec, comm);
  const std::filesystem::path reference = dir / "reference";
  std::optional<int64_t> resumed;
  if (spec.train.resume == "auto" && std::filesystem::exists(reference)) {
    if (resume_training(trainer, reference.string())) trainer.freeze_reference();
    resumed = resume_training(trainer, dir.string());
  }
  if (!resumed) {
    if (!spec.train.init_from.empty()) initialize_from(trainer, spec.train.init_from);
    trainer.freeze_reference();
  }
  std::unique_ptr<MetricsLog> metrics;
  if (comm.rank() == 0) {
    prepare_run_dir(spec, dir, resumed);
    metrics = std::make_unique<MetricsLog>((dir / "metrics.jsonl").string());
  }
  comm.control().barrier();
  // The reference, for resumes (once: a relaunch that found it loaded it above).
  if (!resumed && !std::filesystem::exists(reference / "latest"))
    save_training_checkpoint(trainer, reference.string(), 0);
  LossConfig config;
  config.dpo = dpo_config;
  const auto dpo = make_loss("dpo", config);
  log_info("run ", dir.string(), ": DPO (beta ", dpo_config.beta, ") on ", pairs.size(), " pairs from ", data_path,
           ", ", spec.train.steps, " steps x ", spec.train.global_batch() / 2, " pairs, reference: ",
           spec.train.init_from.empty() ? "the seed's initial weights" : spec.train.init_from);

  const auto start = std::chrono::steady_clock::now();
  int64_t last_saved = resumed.value_or(-1);
  for (int64_t step = resumed.value_or(0); step < spec.train.steps; ++step) {
    fault_point("train.step", comm.rank(), step);
    if (agree_on_preemption(comm)) {
      log_warn("preemption: checkpointing step ", step, " and exiting for requeue (exit ", kExitPreempted, ")");
      return last_saved == step || try_checkpoint(trainer, dir, step) ? kExitPreempted : kExitCheckpointFailed;
    }
    const DpoStep s = dpo_step(trainer, spec, *dpo, pairs, step);
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (comm.rank() == 0) metrics->append(dpo_json(s, elapsed));
    const bool last = step + 1 == spec.train.steps;
    if ((step + 1) % spec.train.log_every == 0 || last)
      log_info("step ", step + 1, "/", spec.train.steps, " dpo | loss ", s.step.loss, " | accuracy ",
               s.loss.metrics.count("accuracy") ? s.loss.metrics.at("accuracy") : 0.0, " | margin ",
               s.loss.metrics.count("reward_margin") ? s.loss.metrics.at("reward_margin") : 0.0, " | lr ", s.step.lr);
    const int64_t every = spec.train.checkpoint_every;
    if (last || (every > 0 && (step + 1) % every == 0)) {
      if (!try_checkpoint(trainer, dir, step + 1)) return kExitCheckpointFailed;
      last_saved = step + 1;
    }
  }
  log_info("done; metrics in ", (dir / "metrics.jsonl").string());
  return kExitOk;
}

}  // namespace flywheel
