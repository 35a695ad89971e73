// What the trainer and its run loop take from a job's configuration: the model, the [train] and
// [mesh] sections, and the shape's name and text to record. launch/ assembles it from a training
// shape (launch/shape.h); nothing below launch/ reads a shape file.
#pragma once

#include <string>

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

}  // namespace flywheel
