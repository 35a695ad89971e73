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

#include "rl/rollout_coordinator.h"
#include "train/loss_batch.h"

namespace flywheel {

// Global batch [rows = samples, seq]. Throws when a sample does not fit seq + 1 tokens (naming
// train.seq_len and the sample's length).
LossBatch rollout_rows(const std::vector<RolloutSample>& samples, const std::vector<float>& row_advantage, int64_t seq);

}  // namespace flywheel
