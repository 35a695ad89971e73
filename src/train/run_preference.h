// `flywheel train` with train.objective = dpo (see run_preference.cpp).
#pragma once

#include <string>

#include "data/data_source.h"
#include "parallel/mesh.h"
#include "train/loss.h"
#include "train/train_spec.h"

namespace flywheel {

// What DPO needs of the mesh and batch beyond the trainer's checks: whole rows on one rank (cp = 1),
// an even number of rows per rank (a pair's two rows stay together), beta > 0. Errors name the keys.
void check_preference_spec(const TrainSpec& spec, const DpoConfig& dpo);

// DPO on the preference pairs of data.source = jsonl:<path>, tokenized by data's TextCodec.
// Collective over the trainer ranks; returns the exit code (core/signals.h).
int run_preference_training(const TrainSpec& spec, const DataConfig& data, const DpoConfig& dpo, Mesh& mesh);

}  // namespace flywheel
