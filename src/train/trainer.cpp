#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "ops/adamw.h"

namespace flywheel {

Trainer::Trainer(const Shape& shape, const DataSource& source)
    : shape_(shape), model_(shape.model), sampler_(source, shape.train.seed, shape.train.seq_len) {
  model_.initialize(shape_.train.seed);
  adam_m_.assign(model_.params().numel(), 0.0f);
  adam_v_.assign(model_.params().numel(), 0.0f);
}

StepMetrics Trainer::train_step(int64_t step) {
  const auto start = std::chrono::steady_clock::now();
  const TrainConfig& tc = shape_.train;
  StepMetrics metrics;
  metrics.step = step;

  // The step's samples are global indices [step * global_batch, (step + 1) * global_batch).
  std::vector<Batch> batches;
  for (int64_t micro = 0; micro < tc.grad_accum; ++micro)
    batches.push_back(sampler_.make_batch(step * tc.global_batch() + micro * tc.micro_batch, tc.micro_batch));
  for (const Batch& b : batches) metrics.loss_tokens += b.loss_tokens();
  const double inv_tokens = metrics.loss_tokens > 0 ? 1.0 / static_cast<double>(metrics.loss_tokens) : 0.0;

  model_.params().zero_grads();
  const double aux_scale = shape_.model.moe_aux_loss_coef / static_cast<double>(tc.grad_accum);
  std::vector<float> ce_weight;
  for (const Batch& b : batches) {
    ce_weight.resize(b.loss_mask.size());
    for (size_t i = 0; i < ce_weight.size(); ++i) ce_weight[i] = static_cast<float>(b.loss_mask[i] * inv_tokens);
    const MicroBatchResult r =
        model_.forward_backward(b.tokens.data(), b.targets.data(), ce_weight.data(), b.rows, b.seq, aux_scale);
    metrics.ce_loss += r.ce_loss;
    metrics.aux_loss += r.aux_loss / static_cast<double>(tc.grad_accum);
    metrics.tokens += b.rows * b.seq;
  }
  metrics.loss = metrics.ce_loss + shape_.model.moe_aux_loss_coef * metrics.aux_loss;

  Buffer<float>& grads = model_.params().grads();
  metrics.grad_norm = std::sqrt(ops::sum_of_squares(grads.data(), static_cast<int64_t>(grads.size())));
  FW_CHECK(std::isfinite(metrics.grad_norm), "step ", step, ": the gradient norm is not finite (loss ",
           metrics.loss, "); lower train.lr or check the data");
  if (tc.grad_clip > 0 && metrics.grad_norm > tc.grad_clip)
    ops::scale_in_place(grads.data(), static_cast<int64_t>(grads.size()),
                        static_cast<float>(tc.grad_clip / metrics.grad_norm));
  metrics.lr = learning_rate(tc, step);
  apply_optimizer(step, metrics.lr);
  metrics.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return metrics;
}

void Trainer::apply_optimizer(int64_t step, double lr) {
  const TrainConfig& tc = shape_.train;
  ParameterSet& params = model_.params();
  ops::AdamWHyper hyper{lr, tc.beta1, tc.beta2, tc.adam_eps, 0.0, step + 1};
  for (size_t id = 0; id < params.list().size(); ++id) {
    const ParamInfo& p = params.info(static_cast<int>(id));
    hyper.weight_decay = p.weight_decay ? tc.weight_decay : 0.0;
    ops::adamw_update(params.value(static_cast<int>(id)), params.grad(static_cast<int>(id)),
                      adam_m_.data() + p.offset, adam_v_.data() + p.offset, p.numel, hyper);
  }
}

}  // namespace flywheel
