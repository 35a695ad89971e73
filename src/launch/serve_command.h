// `flywheel serve --model DIR`: the OpenAI-compatible HTTP endpoint over a Hugging Face model directory or a run's
// committed step (deploy/, docs/serving.md). A plain process; it serves until SIGINT or SIGTERM and exits 0.
#pragma once

#include "launch/runtime.h"

namespace flywheel {

int serve_command(const Runtime& rt, int argc, char** argv);

}  // namespace flywheel
