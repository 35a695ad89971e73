// `flywheel plan`: the analytic plan of a shape's training step (src/parallel/plan.h) as tables:
// per-rank memory, per-step communication by collective and by communicator, an estimated step time,
// and with --ranks the fastest meshes that fit a device. A plain process: no MPI launch needed.
#pragma once

#include "launch/runtime.h"

namespace flywheel {

int plan_command(const Runtime& rt, int argc, char** argv);

}  // namespace flywheel
