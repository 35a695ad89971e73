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

// Rank 0 of comm decides the run name (it may contain the time) and every rank of comm learns it.
std::string agree_on_run_name(const TrainSpec& spec, Comm& comm);

// Prepares the run directory on one rank: new, or resumed (metrics.jsonl cut back to the checkpoint).
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
