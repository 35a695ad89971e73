// Trainer steps on caller-supplied rows (RL and preference objectives), the forward-only logprob
// pass they share, and the frozen reference policy (docs/objectives.md, docs/rl.md).
//
// A step: (1) logprob pass -> logp_t of every local token; (2) the objective, on the ranks holding
// the LM head, gives L and dL/dlogp_t; (3) forward + backward with per-token weights -dL/dlogp_t,
// whose parameter gradient is exactly dL/dtheta; clip; AdamW.
#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "parallel/context_parallel.h"
#include "parallel/pipeline.h"
#include "core/fault_injection.h"
#include "train/trainer.h"

namespace flywheel {

std::vector<int64_t> Trainer::local_token_positions(int64_t rows, int64_t seq) const {
  const ContextSplit split{&mesh_->cp()};
  std::vector<int64_t> positions;
  if (!split.active()) {
    for (int64_t i = 0; i < rows * seq; ++i) positions.push_back(i);
    return positions;
  }
  const std::vector<int64_t> local = local_positions(split, seq / split.ranks());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t p : local) positions.push_back(r * seq + p);
  return positions;
}

Trainer::LocalRows Trainer::local_rows(const CallerBatch& batch) const {
  const TrainConfig& tc = spec_.train;
  LocalRows local;
  local.rows_per_micro = tc.micro_batch / spec_.mesh.fsdp;
  FW_CHECK(batch.rows == local.rows_per_micro * tc.grad_accum, "this rank got ", batch.rows,
           " rows; it trains train.micro_batch / mesh.fsdp x train.grad_accum = ",
           local.rows_per_micro * tc.grad_accum);
  // Local tokens (cp split) of every micro-batch, contiguous: micro-batch m owns [m * per_micro, ...).
  const std::vector<int64_t> where = local_token_positions(batch.rows, batch.seq);
  local.local_seq = batch.seq / mesh_->cp().size();
  local.per_micro = local.rows_per_micro * local.local_seq;
  FW_CHECK(batch.scored.empty() || batch.scored.size() == batch.tokens.size(), "the batch's scored mask has ",
           batch.scored.size(), " entries for ", batch.tokens.size(), " tokens");
  local.tokens.resize(where.size());
  local.targets.resize(where.size());
  local.scored.resize(batch.scored.empty() ? 0 : where.size());
  for (size_t i = 0; i < where.size(); ++i) {
    local.tokens[i] = batch.tokens[where[i]];
    local.targets[i] = batch.targets[where[i]];
    if (!local.scored.empty()) local.scored[i] = batch.scored[where[i]];
  }
  return local;
}

std::vector<PipelineMicroBatch> Trainer::micro_batches(const LocalRows& local, const float* weights) const {
  std::vector<PipelineMicroBatch> micro;
  for (int64_t m = 0; m < spec_.train.grad_accum; ++m) {
    const int64_t o = m * local.per_micro;
    micro.push_back({local.tokens.data() + o, local.targets.data() + o, weights ? weights + o : nullptr,
                     local.rows_per_micro, local.local_seq});
  }
  return micro;
}

std::vector<float> Trainer::logprob_pass(const LocalRows& local) {
  std::vector<float> logp(local.tokens.size(), 0.0f);
  std::vector<float*> parts;
  for (int64_t m = 0; m < spec_.train.grad_accum; ++m) parts.push_back(logp.data() + m * local.per_micro);
  const float* scored = local.scored.empty() ? nullptr : local.scored.data();
  run_pipeline_logprobs(*model_, mesh_->pp(), micro_batches(local, scored), parts);
  return logp;
}

void Trainer::freeze_reference() {
  if (reference_is_base()) {  // LoRA: the frozen base is the reference; nothing to copy
    reference_frozen_ = true;
    return;
  }
  const Buffer<float>& values = fsdp_->values();
  reference_.assign(values.begin(), values.end());
  reference_frozen_ = true;
}

std::vector<float> Trainer::reference_logprobs(const CallerBatch& batch) {
  FW_CHECK(has_reference(), "reference_logprobs: no reference policy was frozen (freeze_reference)");
  const LocalRows local = local_rows(batch);
  if (reference_is_base()) {
    model_->set_adapters_enabled(false);
    std::vector<float> logp;
    try {
      logp = logprob_pass(local);
    } catch (...) {
      model_->set_adapters_enabled(true);
      throw;
    }
    model_->set_adapters_enabled(true);
    return logp;
  }
  // The model reads its weights through FSDP from the shard values (gathered anew at every use), so
  // swapping the shard contents in place runs the same code on the reference weights.
  Buffer<float>& values = fsdp_->values();
  std::swap_ranges(values.begin(), values.end(), reference_.begin());
  std::vector<float> logp;
  try {
    logp = logprob_pass(local);
  } catch (...) {
    std::swap_ranges(values.begin(), values.end(), reference_.begin());
    throw;
  }
  std::swap_ranges(values.begin(), values.end(), reference_.begin());
  return logp;
}

StepMetrics Trainer::train_on_batch(int64_t step, const CallerBatch& batch, const Objective& objective,
                                    std::vector<float>* logp_out, ObjectiveValue* value_out) {
  maybe_inject_fault(mesh_->world().rank(), step);
  const auto start = std::chrono::steady_clock::now();
  const TrainConfig& tc = spec_.train;
  StepMetrics metrics;
  metrics.step = step;
  metrics.tokens = tc.global_batch() * batch.seq;
  const LocalRows local = local_rows(batch);
  fsdp_->zero_grads();
  std::vector<float> logp = logprob_pass(local);

  // The objective runs where the logprobs are; its loss reaches every trainer through one sum in
  // which each head rank of the dp group contributes its share of the (already global) value.
  std::vector<float> weights(local.tokens.size(), 0.0f);
  ObjectiveValue value;
  if (holds_head()) {
    std::vector<float> dloss(local.tokens.size(), 0.0f);
    value = objective(logp, dloss);
    for (size_t i = 0; i < dloss.size(); ++i) weights[i] = -dloss[i];
  }
  const double aux_scale = spec_.model.moe_aux_loss_coef / static_cast<double>(tc.grad_accum);
  const MicroBatchResult r = run_pipeline_step(*model_, mesh_->pp(), micro_batches(local, weights.data()), aux_scale);
  const double head_share = holds_head() ? 1.0 / mesh_->dp().size() : 0.0;
  double sums[2] = {value.loss * head_share, r.aux_loss / static_cast<double>(tc.grad_accum) / mesh_->dp().size()};
  mesh_->trainers().control().all_reduce_sum(sums, 2);
  metrics.ce_loss = sums[0];
  metrics.aux_loss = sums[1];
  metrics.loss = metrics.ce_loss + spec_.model.moe_aux_loss_coef * metrics.aux_loss;
  if (logp_out) *logp_out = std::move(logp);
  if (value_out) *value_out = std::move(value);
  finish_step(step, metrics, start);
  return metrics;
}

}  // namespace flywheel
