// `flywheel train` with train.objective = dpo: Direct Preference Optimization (Rafailov et al. 2023)
// on preference pairs from JSONL ({"prompt", "chosen", "rejected"} per line), against a frozen
// reference policy: the weights the run starts from (train.init_from's checkpoint, or the seed's
// initialisation), saved once under <run>/reference/ so a resumed run compares with the same one.
//
// Step s takes the pairs at global indices [s P, (s + 1) P), P = global batch / 2, through a fresh
// permutation per epoch (as the SFT sampler does): rows 2k, 2k + 1 are pair k's chosen and rejected
// sides, so the fsdp split of a micro-batch (an even number of rows per rank) keeps pairs together.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "data/preference_data.h"
#include "data/sampler.h"
#include "train/checkpointing.h"
#include "train/loss.h"
#include "train/preference_rows.h"
#include "train/run_loop.h"
#include "train/run_preference.h"
#include "train/run_support.h"

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

DpoStep dpo_step(Trainer& trainer, const TrainSpec& spec, const Loss& dpo, const TextCodec& codec,
                 const std::vector<PreferencePair>& pairs, int64_t step) {
  const std::vector<int64_t> indices = pairs_of_step(spec, step, static_cast<int64_t>(pairs.size()));
  const LossBatch global = make_preference_batch(codec, pairs, indices, spec.train.seq_len);
  LossBatch local = select_rows(global, spec.train.micro_batch, spec.train.grad_accum, spec.mesh.fsdp,
                              trainer.mesh().coords().fsdp);
  // Pair ids must be unique on each rank; select_rows keeps whole pairs, so renumber them locally.
  for (size_t r = 0; r < local.pair_id.size(); ++r) local.pair_id[r] = static_cast<int64_t>(r / 2);
  const CallerBatch caller{local.rows, local.seq, local.tokens, local.targets, local.mask};
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

StepReport dpo_report(const DpoStep& s) {
  StepReport r;
  r.record = {{"step", s.step.step + 1},
              {"phase", "dpo"},
              {"loss", s.step.loss},
              {"lr", s.step.lr},
              {"grad_norm", s.step.grad_norm},
              {"step_seconds", s.step.seconds}};
  for (const auto& [name, value] : s.loss.metrics) r.record[name] = value;
  r.seconds = s.step.seconds;
  r.phase = "dpo";
  const auto metric = [&](const char* name) { return s.loss.metrics.count(name) ? s.loss.metrics.at(name) : 0.0; };
  char fields[160];
  std::snprintf(fields, sizeof(fields), "loss %.4f | accuracy %.3f | margin %.4f | lr %.2e | gnorm %.3f", s.step.loss,
                metric("accuracy"), metric("reward_margin"), s.step.lr, s.step.grad_norm);
  r.fields = fields;
  return r;
}

// DPO's steps in the run loop. The frozen reference is saved once under <run>/reference/ (an
// ordinary checkpoint, so it reloads onto any mesh) and restored before the run resumes.
class DpoSteps final : public RunSteps {
 public:
  DpoSteps(Trainer& trainer, std::shared_ptr<const TextCodec> codec, std::vector<PreferencePair> pairs,
           const std::string& data_path, const DpoConfig& config)
      : trainer_(trainer), codec_(std::move(codec)), pairs_(std::move(pairs)), data_path_(data_path),
        beta_(config.beta) {
    LossConfig losses;
    losses.dpo = config;
    loss_ = make_loss("dpo", losses);
  }
  std::string describe() const override {
    const std::string& init = trainer_.spec().train.init_from;
    const std::string reference = trainer_.reference_is_base() ? "the base (adapters off)"
                                  : init.empty()               ? "the seed's initial weights"
                                                               : init;
    return detail::concat("DPO (beta ", beta_, ") on ", pairs_.size(), " pairs from ", data_path_,
                          ", reference: ", reference);
  }
  void restore_state(const std::filesystem::path& dir) override {
    const std::filesystem::path reference = dir / "reference";
    if (trainer_.reference_is_base())  // LoRA: the reference is the base, with the adapters off
      trainer_.freeze_reference();
    else if (std::filesystem::exists(reference) && resume_training(trainer_, reference.string()))
      trainer_.freeze_reference();
  }
  void fresh_start() override { trainer_.freeze_reference(); }
  void run_dir_ready(const std::filesystem::path& dir, std::optional<int64_t> resumed) override {
    // Once: a relaunch that found the reference loaded it in restore_state.
    if (!resumed && !trainer_.reference_is_base() && !std::filesystem::exists(dir / "reference" / "latest"))
      save_training_checkpoint(trainer_, (dir / "reference").string(), 0);
  }
  StepReport step(int64_t step) override {
    return dpo_report(dpo_step(trainer_, trainer_.spec(), *loss_, *codec_, pairs_, step));
  }

 private:
  Trainer& trainer_;
  std::shared_ptr<const TextCodec> codec_;
  std::vector<PreferencePair> pairs_;
  std::string data_path_;
  double beta_;
  std::unique_ptr<Loss> loss_;
};

}  // namespace

void check_preference_spec(const TrainSpec& spec, const DpoConfig& dpo) {
  const MeshConfig& mesh = spec.mesh;
  FW_INPUT_CHECK(mesh.cp == 1, "train.objective = dpo with mesh.cp = ", mesh.cp,
                 ": DPO sums each row's logprobs on one rank; use mesh.cp = 1");
  FW_INPUT_CHECK((spec.train.micro_batch / mesh.fsdp) % 2 == 0,
                 "train.objective = dpo: train.micro_batch / mesh.fsdp = ", spec.train.micro_batch / mesh.fsdp,
                 " rows per rank must be even (a pair's chosen and rejected rows stay together)");
  FW_INPUT_CHECK(dpo.beta > 0, "rl.dpo_beta = ", dpo.beta, ": must be > 0");
}

int run_preference_training(const TrainSpec& spec, const DataConfig& data, const DpoConfig& dpo_config, Mesh& mesh) {
  const std::string data_path = data.source.substr(std::string("jsonl:").size());
  const std::shared_ptr<const TextCodec> codec = TextCodec::open(data);
  std::vector<PreferencePair> pairs = read_preference_jsonl(data_path, spec.train.seq_len, codec->byte_level());
  check_preference_rows(*codec, pairs, data_path, spec.train.seq_len);
  Trainer trainer(spec, mesh);
  const std::filesystem::path dir =
      std::filesystem::path(spec.train.out_dir) / agree_on_run_name(spec, mesh.trainers());
  DpoSteps steps(trainer, codec, std::move(pairs), data_path, dpo_config);
  return run_loop(trainer, steps, dir);
}

}  // namespace flywheel
