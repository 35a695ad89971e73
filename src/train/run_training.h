// `flywheel train` with train.objective = sft: supervised fine-tuning on a data source, in the one
// run loop (train/run_loop.h).
#pragma once

#include "data/data_source.h"
#include "parallel/mesh.h"
#include "train/train_spec.h"

namespace flywheel {

// The whole run in <out_dir>/<run>/ (train/run_loop.h says what a run does). Collective over the
// trainer ranks; returns the exit code (core/signals.h).
int run_training(const TrainSpec& spec, const DataSource& source, Mesh& mesh);

}  // namespace flywheel
