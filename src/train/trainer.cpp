#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "parallel/pipeline.h"
#include "core/fault_injection.h"

namespace flywheel {

Trainer::Trainer(const TrainSpec& spec, const DataSource& source, Mesh& mesh) : Trainer(spec, mesh) {
  sampler_.emplace(source, spec.train.seed, spec.train.seq_len);
}

Trainer::Trainer(const TrainSpec& spec, Mesh& mesh) : spec_(spec), mesh_(&mesh) {
  FW_CHECK(mesh.is_trainer(), "Trainer constructed on a serving rank");
  model_ = std::make_unique<Transformer>(spec.model, /*allocate_full=*/false,
                                         stage_range(spec.model, spec.mesh, mesh.coords().pp));
  // Expert and context parallelism are applied from outside the model (model/transformer.h).
  expert_exchange_ = std::make_unique<MeshExpertExchange>(mesh.ep(), mesh.dp());
  model_->set_expert_exchange(expert_exchange_.get());
  if (mesh.cp().size() > 1) {
    context_attention_ = std::make_unique<ContextParallelAttention>(mesh.cp());
    model_->set_attention(context_attention_.get());
  }
  fsdp_ = std::make_unique<Fsdp>(*model_, mesh, spec.train.seed, spec.train.from_hf.empty());
}

Trainer::Trainer(const TrainSpec& spec, const DataSource& source)
    : spec_(spec) {
  sampler_.emplace(source, spec.train.seed, spec.train.seq_len);
  local_world_ = make_local_comm("world");
  local_mesh_ = std::make_unique<Mesh>(spec.mesh, *local_world_);
  mesh_ = local_mesh_.get();
  model_ = std::make_unique<Transformer>(spec.model, /*allocate_full=*/false);
  fsdp_ = std::make_unique<Fsdp>(*model_, *mesh_, spec.train.seed, spec.train.from_hf.empty());
}

Trainer::~Trainer() = default;

namespace {
// This cp rank's tokens of every row: its two chunks, in local order (see context_parallel.h).
Batch local_chunks(const Batch& full, const ContextSplit& split) {
  if (!split.active()) return full;
  const int64_t local_seq = full.seq / split.ranks();
  const std::vector<int64_t> positions = local_positions(split, local_seq);
  Batch local;
  local.rows = full.rows;
  local.seq = local_seq;
  for (int64_t r = 0; r < full.rows; ++r)
    for (int64_t p : positions) {
      local.tokens.push_back(full.tokens[r * full.seq + p]);
      local.targets.push_back(full.targets[r * full.seq + p]);
      local.loss_mask.push_back(full.loss_mask[r * full.seq + p]);
    }
  return local;
}
}  // namespace

StepMetrics Trainer::train_step(int64_t step) {
  maybe_inject_fault(mesh_->world().rank(), step);  // FLYWHEEL_FAULT_INJECT: failure-path tests only
  const auto start = std::chrono::steady_clock::now();
  FW_CHECK(sampler_.has_value(), "train_step needs a data source; this Trainer trains on caller rows only");
  const TrainConfig& tc = spec_.train;
  const MeshConfig& mc = spec_.mesh;
  StepMetrics metrics;
  metrics.step = step;

  // This rank's rows of each global micro-batch: fsdp splits the rows, cp the sequence; the global
  // sample indices of step s, micro-batch m are [s B + m b, s B + (m+1) b), B = b x grad_accum.
  const int64_t rows = tc.micro_batch / mc.fsdp;
  const int64_t row0 = mesh_->coords().fsdp * rows;
  std::vector<Batch> batches;
  int64_t local_tokens = 0;
  for (int64_t micro = 0; micro < tc.grad_accum; ++micro) {
    batches.push_back(local_chunks(
        sampler_->make_batch(step * tc.global_batch() + micro * tc.micro_batch + row0, rows), {&mesh_->cp()}));
    local_tokens += batches.back().loss_tokens();
  }
  double token_count = static_cast<double>(local_tokens);
  mesh_->dp().control().all_reduce_sum(&token_count, 1);
  metrics.loss_tokens = static_cast<int64_t>(token_count);
  const double inv_tokens = token_count > 0 ? 1.0 / token_count : 0.0;

  fsdp_->zero_grads();
  const double aux_scale = spec_.model.moe_aux_loss_coef / static_cast<double>(tc.grad_accum);
  std::vector<std::vector<float>> ce_weights(batches.size());
  std::vector<PipelineMicroBatch> micro;
  for (size_t m = 0; m < batches.size(); ++m) {
    const Batch& b = batches[m];
    ce_weights[m].resize(b.loss_mask.size());
    for (size_t i = 0; i < b.loss_mask.size(); ++i)
      ce_weights[m][i] = static_cast<float>(b.loss_mask[i] * inv_tokens);
    micro.push_back({b.tokens.data(), b.targets.data(), ce_weights[m].data(), b.rows, b.seq});
  }
  const MicroBatchResult r = run_pipeline_step(*model_, mesh_->pp(), micro, aux_scale);
  // ce: each last-stage rank holds its rows' share; aux: identical on every dp rank of a stage.
  double sums[2] = {r.ce_loss, r.aux_loss / static_cast<double>(tc.grad_accum) / mesh_->dp().size()};
  mesh_->trainers().control().all_reduce_sum(sums, 2);
  metrics.ce_loss = sums[0];
  metrics.aux_loss = sums[1];
  metrics.loss = metrics.ce_loss + spec_.model.moe_aux_loss_coef * metrics.aux_loss;
  metrics.tokens = tc.global_batch() * tc.seq_len;

  finish_step(step, metrics, start);
  return metrics;
}

void Trainer::finish_step(int64_t step, StepMetrics& metrics, std::chrono::steady_clock::time_point start) {
  const TrainConfig& tc = spec_.train;
  // Every parameter element lives on exactly one trainer rank: the global norm is one all-reduce.
  Buffer<float>& grads = fsdp_->grads();
  double sum_sq = model_->backend().sum_of_squares(grads.data(), static_cast<int64_t>(grads.size()));
  mesh_->trainers().control().all_reduce_sum(&sum_sq, 1);
  metrics.grad_norm = std::sqrt(sum_sq);
  FW_CHECK(std::isfinite(metrics.grad_norm), "step ", step, ": the gradient norm is not finite (loss ",
           metrics.loss, "); lower train.lr or check the data");
  if (tc.grad_clip > 0 && metrics.grad_norm > tc.grad_clip)
    model_->backend().scale_in_place(grads.data(), static_cast<int64_t>(grads.size()),
                                     static_cast<float>(tc.grad_clip / metrics.grad_norm));
  metrics.lr = lr_override_ ? *lr_override_ : learning_rate(tc, step);
  apply_optimizer(step, metrics.lr);
  metrics.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Trainer::apply_optimizer(int64_t step, double lr) {
  const TrainConfig& tc = spec_.train;
  ops::AdamWHyper hyper{lr, tc.beta1, tc.beta2, tc.adam_eps, 0.0, step + 1};
  for (const ShardSlice& s : fsdp_->slices()) {
    if (!s.trainable()) continue;  // a frozen base weight
    hyper.weight_decay = model_->params().info(s.param).weight_decay ? tc.weight_decay : 0.0;
    const int64_t g = s.grad_offset;
    model_->backend().adamw(fsdp_->values().data() + s.local_offset, fsdp_->grads().data() + g,
                            fsdp_->adam_m().data() + g, fsdp_->adam_v().data() + g, s.numel(), hyper);
  }
}

}  // namespace flywheel
