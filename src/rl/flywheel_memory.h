// Host memory each rank of `flywheel run` needs, for the start-up check against the machine
// (core/memory_budget.h): a trainer rank what `flywheel train` would need (train/train_spec.h), plus
// on trainer rank 0 the full-model copy it publishes from and the last published snapshot (the base
// of the next delta); a serving replica its weights in the serve dtype, its KV cache (every decode
// slot holds K and V for model.max_seq_len positions) and the RoPE table.
#pragma once

#include "core/memory_budget.h"
#include "rl/flywheel_spec.h"

namespace flywheel {

// For a validated spec; world_rank >= spec.mesh.trainer_ranks() is a replica.
MemoryNeed flywheel_memory_need(const FlywheelSpec& spec, int world_rank);

}  // namespace flywheel
