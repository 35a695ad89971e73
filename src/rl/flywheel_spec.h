// What `flywheel run` takes from a job's configuration: the trainer's part (train/train_spec.h,
// which it extends, so a FlywheelSpec is the TrainSpec its trainer ranks train with), the [data]
// section (the task's difficulty) and the [rl] section. launch/ assembles it.
#pragma once

#include <cstdint>

#include "data/data_source.h"
#include "rl/rl_config.h"
#include "train/train_spec.h"

namespace flywheel {

struct FlywheelSpec : TrainSpec {
  DataConfig data;
  RlConfig rl;

  // The trainer's checks (on the trainer ranks, objective aside) and the RL ones: at least one
  // replica, a batch of exactly prompts x group rows, exact serving with invariant kernels, and a
  // job of world_size ranks. Errors name the keys.
  void validate(int64_t world_size) const;
};

}  // namespace flywheel
