// The trainer's side of checkpoints: which slices a rank saves (its FSDP shards of weights and AdamW
// moments), what state goes with them, and resuming -- on the same mesh or any other, since the loader
// reads whichever saved rows overlap the rows this rank now holds.
//
// Bit-for-bit resume needs nothing beyond weights, moments and the step: the data order, the learning
// rate and every random number are pure functions of (seed, step, sample index), so the data cursor
// (step x global batch) and the counter-based RNG are recorded for inspection, not restored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "ckpt/tensor_slice.h"
#include "model/parameters.h"
#include "train/trainer.h"

namespace flywheel {

// Collective over the trainer ranks: writes <run_dir>/step-<steps_done> (see docs/checkpoint-format.md).
void save_training_checkpoint(Trainer& trainer, const std::string& run_dir, int64_t steps_done);

// What resume_checkpoint loaded: the steps it holds, its directory, the shape text it recorded.
struct ResumedCheckpoint {
  int64_t step = 0;
  std::string step_dir;
  std::string shape_text;
};

// What a save writes or a load fills: everything; the base weights alone, leaving LoRA adapters and every AdamW
// moment as they are (train.init_from under LoRA: the checkpoint supplies the base, the adapters start anew); or
// the adapters and their moments alone (a LoRA run's own checkpoints: the base is named, not copied, lora_base.h).
enum class CheckpointPart { kAll, kBaseWeights, kAdapters };

// Collective: loads the newest good checkpoint of run_dir into the trainer's shards, or returns
// nullopt when run_dir has no committed checkpoint. Throws when the checkpoint belongs to another
// model or seed. A LoRA run loads its adapters (kAll means kAdapters there) and checks the base the trainer holds
// against the one the checkpoint names: establish the base first.
std::optional<ResumedCheckpoint> resume_checkpoint(Trainer& trainer, const std::string& run_dir,
                                                   CheckpointPart part = CheckpointPart::kAll);
// The same, returning only the number of steps the checkpoint holds.
std::optional<int64_t> resume_training(Trainer& trainer, const std::string& run_dir,
                                       CheckpointPart part = CheckpointPart::kAll);

// Whole tensors of a single-rank ParameterSet (allocate()d full buffers) + moment buffers laid out
// like params.values() (Trainer::adam_m()/adam_v()). Null moment pointers give slices without moments.
std::vector<TensorSlice> whole_tensor_slices(ParameterSet& params, float* adam_m, float* adam_v);

}  // namespace flywheel
