// Rollouts -> training rows: every sample becomes one row of the global batch, in request order
// (prompt i, sample g -> row i * G + g).
//
// A row is BOS + prompt + completion, cut into inputs tokens[0, seq) and targets = the next token
// (PAD past the end). The loss counts exactly the completion tokens the sampler chose (EOS
// included when it stopped there): position t carries completion token c_j when t = |prompt| - 1 + j,
// with the sampler's logprob of c_j and the row's advantage.
#pragma once

#include <cstdint>
#include <vector>

#include "rl/loss.h"
#include "rl/rollout_coordinator.h"

namespace flywheel {

// Global batch [rows = samples, seq]. Throws when a sample does not fit seq + 1 tokens (naming
// train.seq_len and the sample's length).
RlBatch rollout_rows(const std::vector<RolloutSample>& samples, const std::vector<float>& row_advantage, int64_t seq);

// The rows of `global` one rank trains: micro-batch m of the step is global rows
// [m * micro_batch, (m + 1) * micro_batch), of which fsdp rank f takes its rows_per_micro.
RlBatch select_rows(const RlBatch& global, int64_t micro_batch, int64_t grad_accum, int64_t fsdp, int64_t fsdp_rank);

// Per-token fields of `rows` reordered to `positions` (Trainer::local_token_positions): what the
// loss sees on a context-parallel rank. Whole-row fields are kept.
RlBatch reorder_tokens(const RlBatch& rows, const std::vector<int64_t>& positions, int64_t local_seq);

}  // namespace flywheel
