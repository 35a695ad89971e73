// What a resume (train.resume = auto on a run directory with committed steps) checks before it
// reads a checkpoint or writes anything, and once it has loaded one. train/run_loop.cpp calls these
// in that order; a refusal leaves the run directory as it was.
#pragma once

#include <filesystem>

#include "comm/comm.h"
#include "train/checkpointing.h"
#include "train/train_spec.h"

namespace flywheel {

// Collective over comm; throws on every rank when
//  - `latest` names a step older than the newest committed step (the message names the steps and
//    the flywheel-ckpt rollback commands that choose between them), or
//  - the shape differs from the run's shape.ini in a key a resume may not change (train/shape_change.h;
//    the message lists every differing key with its old and new value).
// Does nothing when run_dir holds no committed step (nothing to resume).
void check_before_resume(const TrainSpec& spec, const std::filesystem::path& run_dir, Comm& comm);

// Collective over comm, once `resumed` is loaded: the same shape check against the shape text that
// checkpoint recorded (its state.h5); then rank 0 logs every allowed change, and what a changed
// train.steps does to the learning-rate schedule.
void check_resumed_shape(const TrainSpec& spec, const std::filesystem::path& run_dir, const ResumedCheckpoint& resumed,
                         Comm& comm);

}  // namespace flywheel
