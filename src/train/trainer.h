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

#include <cstdint>
#include <memory>

#include "core/buffer.h"
#include "launch/shape.h"
#include "model/transformer.h"
#include "parallel/fsdp.h"
#include "parallel/mesh.h"
#include "train/data_source.h"
#include "train/sampler.h"

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

class Trainer {
 public:
  // Trains on `mesh` (every trainer rank of the mesh constructs its Trainer).
  Trainer(const Shape& shape, const DataSource& source, Mesh& mesh);
  // Single process: a mesh of one over a local (MPI-free) communicator.
  Trainer(const Shape& shape, const DataSource& source);
  ~Trainer();

  StepMetrics train_step(int64_t step);
  Transformer& model() { return *model_; }
  Fsdp& shards() { return *fsdp_; }
  Mesh& mesh() { return *mesh_; }
  const Shape& shape() const { return shape_; }

 private:
  void apply_optimizer(int64_t step, double lr);

  Shape shape_;
  std::unique_ptr<Comm> local_world_;  // only for the single-process constructor
  std::unique_ptr<Mesh> local_mesh_;
  Mesh* mesh_;
  std::unique_ptr<Transformer> model_;
  std::unique_ptr<Fsdp> fsdp_;
  Sampler sampler_;
};

// The whole run in <out_dir>/<run>/: resumes from its newest good checkpoint (train.resume = auto),
// trains to shape.train.steps with a progress line per log_every steps and every step appended to
// metrics.jsonl (rank 0), checkpoints every checkpoint_every steps and at the end, and stops early
// with a checkpoint when a preemption signal arrives. Returns the exit code (launch/signals.h).
int run_training(const Shape& shape, const DataSource& source, Mesh& mesh);

}  // namespace flywheel
