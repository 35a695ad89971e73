// The single-rank trainer: micro-batches -> forward/backward -> clip -> AdamW, one step at a time.
//
// Loss normalisation: the SFT loss of a step is the token mean over the whole global batch,
//   ce = sum_{rows, t} mask * CE / (loss tokens in the global batch),
// so gradient accumulation over micro-batches gives the same gradient as one big batch.
// The MoE load-balancing term is the mean of the per-micro-batch aux values times its coefficient.
#pragma once

#include <cstdint>
#include <functional>

#include "core/buffer.h"
#include "launch/shape.h"
#include "model/transformer.h"
#include "train/data_source.h"
#include "train/sampler.h"

namespace flywheel {

struct StepMetrics {
  int64_t step = 0;        // 0-based step just completed
  double loss = 0;         // ce + aux_coef * aux
  double ce_loss = 0;
  double aux_loss = 0;     // coefficient-free
  double lr = 0;
  double grad_norm = 0;    // before clipping
  int64_t loss_tokens = 0; // tokens counted by the loss
  int64_t tokens = 0;      // tokens processed (rows x seq_len)
  double seconds = 0;
};

class Trainer {
 public:
  Trainer(const Shape& shape, const DataSource& source);

  StepMetrics train_step(int64_t step);
  Transformer& model() { return model_; }
  const Shape& shape() const { return shape_; }
  // AdamW first and second moments, laid out like params().values().
  Buffer<float>& adam_m() { return adam_m_; }
  Buffer<float>& adam_v() { return adam_v_; }

 private:
  void apply_optimizer(int64_t step, double lr);

  Shape shape_;
  Transformer model_;
  Sampler sampler_;
  Buffer<float> adam_m_, adam_v_;
};

// The whole run: creates <out_dir>/<run>/, trains shape.train.steps steps, prints a progress line
// per log_every steps and appends every step to metrics.jsonl. Returns the run directory.
std::string run_training(const Shape& shape, const DataSource& source);

}  // namespace flywheel
