// LossBatch: the rows of a global batch as one rank holds them, with every per-token array a loss
// reads (train/loss.h), and the two ways a rank's share is cut out of the global batch.
#pragma once

#include <cstdint>
#include <vector>

namespace flywheel {

// The rows of a global batch that one rank holds, flattened [rows, seq]; position t predicts
// targets[t]. Per-token vectors have rows * seq entries; optional ones may be empty.
struct LossBatch {
  int64_t rows = 0, seq = 0;
  std::vector<int32_t> tokens, targets;
  std::vector<float> mask;           // 1 where the loss counts the token (completion + EOS), else 0
  std::vector<float> advantage;      // GRPO: per token (constant over a row's completion)
  std::vector<float> old_logprob;    // GRPO: trainer logp at the start of the step; empty = logp (ratio 1)
  std::vector<float> infer_logprob;  // the sampler's logprob (0 where mask 0); needed for TIS
  std::vector<float> ref_logprob;    // frozen reference policy; needed for KL and DPO
  std::vector<int64_t> pair_id;      // DPO, per row: the pair the row belongs to
  std::vector<int8_t> chosen;        // DPO, per row: 1 chosen side, 0 rejected side

  int64_t tokens_count() const { return rows * seq; }
  // Throws unless every non-empty vector has its size (rows*seq per token, rows per row), the
  // mask is 0/1, and logp_size == rows*seq.
  void check_shapes(int64_t logp_size) const;
};

// The rows of `global` one rank trains: micro-batch m of the step is global rows
// [m * micro_batch, (m + 1) * micro_batch), of which fsdp rank f takes its rows_per_micro.
LossBatch select_rows(const LossBatch& global, int64_t micro_batch, int64_t grad_accum, int64_t fsdp, int64_t fsdp_rank);

// Per-token fields of `rows` reordered to `positions` (Trainer::local_token_positions): what the
// loss sees on a context-parallel rank. Whole-row fields are kept.
LossBatch reorder_tokens(const LossBatch& rows, const std::vector<int64_t>& positions, int64_t local_seq);

}  // namespace flywheel
