// What a GRPO step reports: its line of metrics.jsonl and its progress-line fields (train/run_loop.h).
#pragma once

#include "rl/flywheel_trainer.h"
#include "train/run_loop.h"

namespace flywheel {

StepReport rl_report(const RlStepReport& report);

}  // namespace flywheel
