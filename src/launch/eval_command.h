// `flywheel eval`: task accuracy and held-out loss of a run's checkpoints (src/eval/evaluate.h).
// A plain process: no MPI launch needed.
#pragma once

#include "launch/runtime.h"

namespace flywheel {

int eval_command(const Runtime& rt, int argc, char** argv);

}  // namespace flywheel
