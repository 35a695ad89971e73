// Full weights on trainer rank 0, for publishing serving snapshots.
//
// Every parameter element lives on exactly one trainer rank (FSDP shards rows; each stage holds its
// layers; expert shards live on their ep ranks), so rank 0 receives each rank's slices once: a CBOR
// table of (name, rows, cols) and one float message with the rows. Traffic: the model's fp32 bytes
// into rank 0 per publish. That is fine for the models this box trains; at thousands of ranks each
// stage's dp group would publish its own shards instead (see docs/rl.md, "Scaling the publish").
#pragma once

#include "model/parameters.h"
#include "train/trainer.h"

namespace flywheel {

// Collective over the trainer ranks. On trainer rank 0, `full` (a single-rank ParameterSet of the
// same model, allocated) receives every weight; other ranks pass nullptr. trainable_only (the same on every
// rank): only the trained tensors travel (a LoRA run's adapters; `full` keeps its frozen base from an earlier
// gather), so the traffic is the adapters' bytes.
void gather_full_weights(Trainer& trainer, ParameterSet* full, bool trainable_only = false);

}  // namespace flywheel
