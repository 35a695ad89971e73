// The trainer: micro-batches -> forward/backward on the mesh -> clip -> AdamW, one step at a time.
//
// Loss normalisation: the SFT loss of a step is the token mean over the whole global batch,
//   ce = sum_{rows, t} mask * CE / (loss tokens in the global batch),
// so gradient accumulation and data parallelism give the same gradient as one big batch on one rank.
// The MoE load-balancing term is the mean over micro-batches of the aux computed over each global
// micro-batch (routing statistics are all-reduced over the data-parallel ranks).
//
// Each rank trains its share: rows split over fsdp; parameters, gradients and Adam moments sharded
// by Fsdp. One rank with a mesh of one runs the same code with groups of one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/buffer.h"
#include "train/train_spec.h"
#include "model/transformer.h"
#include "parallel/context_parallel.h"
#include "parallel/expert_parallel.h"
#include "parallel/fsdp.h"
#include "parallel/mesh.h"
#include "parallel/pipeline.h"
#include "data/data_source.h"
#include "data/sampler.h"

namespace flywheel {

struct StepMetrics {
  int64_t step = 0;         // 0-based step just completed
  double loss = 0;          // ce + aux_coef * aux  (global)
  double ce_loss = 0;
  double aux_loss = 0;      // coefficient-free
  double lr = 0;
  double grad_norm = 0;     // before clipping
  int64_t loss_tokens = 0;  // tokens counted by the loss (global batch)
  int64_t tokens = 0;       // tokens processed (global batch rows x seq_len)
  double seconds = 0;
};

// Rows supplied by the caller (RL rollouts, preference pairs) as this rank sees them before the
// context-parallel split: rows x seq tokens, targets = next tokens (PAD where nothing is predicted),
// and any per-token arrays the objective needs, all [rows * seq].
struct CallerBatch {
  int64_t rows = 0, seq = 0;
  std::vector<int32_t> tokens, targets;
  // 1 where the objective reads logp (its loss mask), else 0; empty: every token. The logprob passes
  // run the LM head only there and report 0 elsewhere.
  std::vector<float> scored;
};

// The objective of a caller-batch step, evaluated on the ranks that hold the LM head (the last
// pipeline stage): given log p(target) of every local token (after the cp split, in local order,
// see local_token_positions), it writes dL/dlogp per token and returns L (the global value) and
// named metrics. Any function of the logps is exact: the backward uses weights -dL/dlogp.
struct ObjectiveValue {
  double loss = 0;
  std::vector<std::pair<std::string, double>> metrics;
};
using Objective = std::function<ObjectiveValue(const std::vector<float>& logp, std::vector<float>& dloss_dlogp)>;

class Trainer {
 public:
  // Trains on `mesh` (every trainer rank of the mesh constructs its Trainer).
  Trainer(const TrainSpec& spec, const DataSource& source, Mesh& mesh);
  // Without a data source: only train_on_batch (caller rows) is available.
  Trainer(const TrainSpec& spec, Mesh& mesh);
  // Single process: a mesh of one over a local (MPI-free) communicator.
  Trainer(const TrainSpec& spec, const DataSource& source);
  ~Trainer();

  StepMetrics train_step(int64_t step);
  // One optimizer step on caller rows: a forward-only logprob pass, the objective, then forward +
  // backward with per-token weights -dL/dlogp, clipping and AdamW. local.rows must be
  // train.global_batch() / mesh.fsdp (split into grad_accum micro-batches). On head ranks,
  // *logp_out (optional) receives the logprob pass's values (local order). metrics.loss = L.
  StepMetrics train_on_batch(int64_t step, const CallerBatch& local, const Objective& objective,
                             std::vector<float>* logp_out = nullptr, ObjectiveValue* value_out = nullptr);
  // The frozen reference policy (KL penalties, DPO): a copy of this rank's shard values now, and the
  // logprobs of caller rows under it (head ranks; local order as for Objective).
  void freeze_reference();
  bool has_reference() const { return reference_frozen_; }
  // LoRA (model.lora): the reference is the frozen base, computed with the adapters switched off.
  bool reference_is_base() const { return spec_.model.lora.enabled(); }
  std::vector<float> reference_logprobs(const CallerBatch& batch);
  // A fixed learning rate for the steps that follow (the RL phase), instead of the schedule of
  // learning_rate(train, step); nullopt returns to the schedule.
  void set_learning_rate_override(std::optional<double> lr) { lr_override_ = lr; }
  // True on ranks that hold the LM head (where Objective runs and logprobs exist).
  bool holds_head() const { return model_->stage().has_head(spec_.model.n_layers); }
  // Index into the caller's [rows * seq] arrays of every local token after the cp split, in the
  // order Objective sees them.
  std::vector<int64_t> local_token_positions(int64_t rows, int64_t seq) const;
  Transformer& model() { return *model_; }
  Fsdp& shards() { return *fsdp_; }
  Mesh& mesh() { return *mesh_; }
  const TrainSpec& spec() const { return spec_; }

 private:
  void apply_optimizer(int64_t step, double lr);
  // This rank's tokens of caller rows after the cp split, by micro-batch (objective_step.cpp).
  struct LocalRows {
    std::vector<int32_t> tokens, targets;
    std::vector<float> scored;  // empty: every token
    int64_t rows_per_micro = 0, local_seq = 0, per_micro = 0;
  };
  LocalRows local_rows(const CallerBatch& batch) const;
  std::vector<PipelineMicroBatch> micro_batches(const LocalRows& local, const float* weights) const;
  std::vector<float> logprob_pass(const LocalRows& local);
  // Gradient norm, clipping and the AdamW update after the gradients are complete.
  void finish_step(int64_t step, StepMetrics& metrics, std::chrono::steady_clock::time_point start);

  TrainSpec spec_;
  std::unique_ptr<Comm> local_world_;  // only for the single-process constructor
  std::unique_ptr<Mesh> local_mesh_;
  Mesh* mesh_;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<MeshExpertExchange> expert_exchange_;
  std::unique_ptr<ContextParallelAttention> context_attention_;  // mesh.cp > 1
  std::unique_ptr<Fsdp> fsdp_;
  std::optional<Sampler> sampler_;  // SFT data (absent for caller-row training)
  std::optional<double> lr_override_;
  std::vector<float> reference_;  // frozen shard values (empty: none, or the base is the reference)
  bool reference_frozen_ = false;
};

}  // namespace flywheel
