// Optimisation and run settings: the [train] section of a training shape.
#pragma once

#include <cstdint>
#include <string>

#include "parallel/mesh_rules.h"

namespace flywheel {

struct TrainConfig {
  uint64_t seed = 1234;
  int64_t steps = 100;
  int64_t seq_len = 128;        // tokens per row (inputs; the sample is seq_len + 1 long)
  int64_t micro_batch = 8;      // rows per micro-batch
  int64_t grad_accum = 1;       // micro-batches per optimizer step; global batch = micro_batch * grad_accum
  std::string objective = "sft";  // sft | dpo (flywheel train), grpo (flywheel run)

  double lr = 3e-3;             // peak learning rate
  double min_lr = 3e-4;         // floor of the cosine decay
  int64_t warmup_steps = 10;    // linear warmup from lr / warmup_steps to lr
  double weight_decay = 0.1;    // AdamW decoupled decay on matrices (not on norm gains)
  double beta1 = 0.9;
  double beta2 = 0.95;
  double adam_eps = 1e-8;
  double grad_clip = 1.0;       // clip the global gradient L2 norm to this (0: off)

  int threads = 0;              // per rank; 0: cores on the node / ranks on the node
  std::string out_dir = "checkpoints";
  std::string run_name;         // empty: <shape name>-<UTC date>-<time>
  int64_t log_every = 1;        // progress line every N steps (metrics.jsonl gets every step)
  int64_t checkpoint_every = 50;  // sharded checkpoint every N steps (and always at the end); 0: end only
  int keep_last = 3;            // committed checkpoints kept (older ones are deleted); 0: keep all
  std::string resume = "auto";  // auto: continue from the run directory's newest good checkpoint; never
  std::string init_from;        // a run directory whose newest checkpoint's weights start a new run (moments reset)
  // A Hugging Face model directory (shape key model.from_hf): its config.json set the [model] keys
  // (launch/hf_shape.h) and its safetensors weights start a new run (train/hf_import.h).
  std::string from_hf;

  int64_t global_batch() const { return micro_batch * grad_accum; }
  BatchShape batch() const { return {seq_len, micro_batch, grad_accum}; }
  void validate() const;
};

// Learning rate at 0-based step: linear warmup, then cosine from lr to min_lr at the last step.
double learning_rate(const TrainConfig& config, int64_t step);

}  // namespace flywheel
