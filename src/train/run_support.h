// Pieces the run loop (train/run_loop.h) and its steps share: the run
// directory, preemption agreement, checkpoints that fail cleanly, rate formatting.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "comm/comm.h"
#include "train/train_spec.h"
#include "train/trainer.h"

namespace flywheel {

// Collective over comm: rank 0 decides the run name (train.run_name, else a default name
// "<shape>-<UTC yyyymmdd-hhmmss.mmm>-<4 hex digits>" whose directory did not exist), creates
// <out_dir>/<name>/ and takes its lock (train/run_lock.h) before anything reads or writes the
// directory; every rank of comm learns the name, or throws the refusal naming the lock's holder.
// Rank 0 holds the lock until the process exits. Rank 0 of comm must be trainer rank 0.
std::string agree_on_run_name(const TrainSpec& spec, Comm& comm);

// On rank 0, when the run failed before preparing its directory: releases the lock, and removes the
// directory if agree_on_run_name created it and it holds nothing else, so a failed start leaves
// nothing behind.
void abandon_unused_run_dir();

// Prepares the run directory on one rank: new, or resumed (metrics.jsonl cut back to the checkpoint,
// shape.ini rewritten when the resume changed the shape in keys a resume may change).
void prepare_run_dir(const TrainSpec& spec, const std::filesystem::path& dir, std::optional<int64_t> resumed);

// "12.3k"-style rate for progress lines.
std::string format_rate(double per_second);

// True when any rank of comm received a preemption signal (agreed at a step boundary).
bool agree_on_preemption(Comm& comm);

// Collective checkpoint of steps_done; false (after logging why) when the save failed. A failed save
// ends the run with kExitCheckpointFailed: the previous checkpoint stays intact.
bool try_checkpoint(Trainer& trainer, const std::filesystem::path& dir, int64_t steps_done);

// Collective over the trainer ranks: named values that exist on the ranks holding the LM head (loss
// metrics, identical on every head rank) reach trainer rank 0, which logs them. The first rank of
// the last pipeline stage sends them when rank 0 is not a head rank itself (pp > 1).
std::map<std::string, double> head_values_to_rank0(Trainer& trainer, const std::map<std::string, double>& values);

// Collective: loads the newest checkpoint of train.init_from (a run directory) as the starting
// weights of a new run and resets the AdamW moments. Throws naming the directory when it holds no
// committed checkpoint or belongs to another model or seed.
void initialize_from(Trainer& trainer, const std::string& run_dir);

}  // namespace flywheel
