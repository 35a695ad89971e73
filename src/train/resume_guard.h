// What a resume (train.resume = auto on a run directory with committed steps) checks before it
// reads a checkpoint or writes anything (train/run_loop.cpp); a refusal leaves the run directory as
// it was.
#pragma once

#include <filesystem>

#include "comm/comm.h"
#include "train/train_spec.h"

namespace flywheel {

// Collective over comm; throws on every rank when `latest` names a step older than the newest
// committed step (the message names the steps and the flywheel-ckpt rollback commands that choose
// between them). Does nothing when run_dir holds no committed step (nothing to resume).
void check_before_resume(const TrainSpec& spec, const std::filesystem::path& run_dir, Comm& comm);

}  // namespace flywheel
