// `flywheel train` with train.objective = dpo (see run_preference.cpp).
#pragma once

#include "launch/shape.h"
#include "parallel/mesh.h"

namespace flywheel {

// Collective over the trainer ranks; returns the exit code (launch/signals.h).
int run_preference_training(const Shape& shape, Mesh& mesh);

}  // namespace flywheel
