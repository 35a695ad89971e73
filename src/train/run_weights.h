// A committed step of a run directory as one process's weights (`flywheel eval`, `flywheel serve --model RUN`):
// any mesh's checkpoint loads into a ParameterSet of whole tensors. A LoRA run's checkpoints hold only its adapters:
// the base is rebuilt once from its source (train/lora_base.h) and its checksum checked against each step.
#pragma once

#include <cstdint>
#include <string>

#include "model/parameters.h"
#include "train/train_config.h"

namespace flywheel {

// Loads step `step` of `run_dir` into `whole` (a model of `model`'s architecture; `train`: the run's [train], where
// a LoRA base comes from). `base_loaded`: set once the LoRA base is in (pass the same flag for further steps).
// Throws InputError naming the run and step when it is not committed or not loadable, or the base differs.
void load_run_step(ParameterSet& whole, const ModelConfig& model, const TrainConfig& train, const std::string& run_dir,
                   int64_t step, bool& base_loaded);

}  // namespace flywheel
