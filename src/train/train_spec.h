// What the trainer and its run loop take from a job's configuration: the model, the [train] and
// [mesh] sections, and the shape's name and text to record. launch/ assembles it from a training
// shape (launch/shape.h); nothing below launch/ reads a shape file.
#pragma once

#include <string>

#include "core/memory_budget.h"
#include "model/config.h"
#include "parallel/mesh_config.h"
#include "train/train_config.h"

namespace flywheel {

struct TrainSpec {
  ModelConfig model;
  TrainConfig train;
  MeshConfig mesh;
  std::string name;  // the shape's name ("tiny-dense"): default run names start with it
  std::string text;  // the resolved shape text, written to run directories and checkpoints

  // Each section's own checks, then what they must agree on: the sequence fits the model and the
  // mesh lays out the model and the batch (parallel/mesh_rules.h). Errors name the keys.
  void validate() const;
};

// Host memory trainer rank `trainer_rank` needs for a validated spec: parallel/plan.h's plan of the
// rank (weights, grads, AdamW moments, FSDP working copies, activations, workspace and buffers) and
// the RoPE table. A model whose byte counts would overflow int64 (the plan's arithmetic) gets its
// parameters' 16 bytes split evenly over the trainer ranks instead: a lower bound, enough to refuse it.
MemoryNeed trainer_memory_need(const TrainSpec& spec, int trainer_rank);

// Bytes of the RoPE tables one copy of the model holds (cos and sin of every position, in float).
double rope_table_bytes(const ModelConfig& model);

}  // namespace flywheel
