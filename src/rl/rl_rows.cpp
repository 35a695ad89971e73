#include "rl/rl_rows.h"

#include "core/error.h"
#include "train/tokenizer.h"

namespace flywheel {

RlBatch rollout_rows(const std::vector<RolloutSample>& samples, const std::vector<float>& row_advantage, int64_t seq) {
  FW_CHECK(row_advantage.size() == samples.size(), "rollout_rows: ", samples.size(), " samples but ",
           row_advantage.size(), " advantages");
  RlBatch b;
  b.rows = static_cast<int64_t>(samples.size());
  b.seq = seq;
  const int64_t n = b.rows * seq;
  b.tokens.assign(n, ByteTokenizer::kPad);
  b.targets.assign(n, ByteTokenizer::kPad);
  b.mask.assign(n, 0.0f);
  b.advantage.assign(n, 0.0f);
  b.infer_logprob.assign(n, 0.0f);
  for (int64_t r = 0; r < b.rows; ++r) {
    const RolloutSample& s = samples[r];
    std::vector<int32_t> row = s.prompt_tokens;
    row.insert(row.end(), s.result.tokens.begin(), s.result.tokens.end());
    FW_CHECK(static_cast<int64_t>(row.size()) <= seq + 1, "a rollout of ", row.size(), " tokens (prompt ",
             s.prompt_tokens.size(), " + completion ", s.result.tokens.size(), ") does not fit train.seq_len = ", seq,
             " (+1): raise train.seq_len to at least ", row.size() - 1, " or lower rl.max_new_tokens");
    FW_CHECK(s.result.logprobs.size() == s.result.tokens.size(), "rollout ", s.result.id, ": ",
             s.result.tokens.size(), " tokens but ", s.result.logprobs.size(), " logprobs");
    int32_t* tokens = b.tokens.data() + r * seq;
    int32_t* targets = b.targets.data() + r * seq;
    for (size_t t = 0; t + 1 < row.size(); ++t) {
      tokens[t] = row[t];
      targets[t] = row[t + 1];
    }
    const int64_t first = static_cast<int64_t>(s.prompt_tokens.size()) - 1;
    for (size_t j = 0; j < s.result.tokens.size(); ++j) {
      const int64_t t = r * seq + first + static_cast<int64_t>(j);
      b.mask[t] = 1.0f;
      b.advantage[t] = row_advantage[r];
      b.infer_logprob[t] = s.result.logprobs[j];
    }
  }
  return b;
}

namespace {
template <typename T>
void copy_rows(const std::vector<T>& from, std::vector<T>& to, int64_t first_row, int64_t rows, int64_t width) {
  if (from.empty()) return;
  to.insert(to.end(), from.begin() + first_row * width, from.begin() + (first_row + rows) * width);
}
}  // namespace

RlBatch select_rows(const RlBatch& g, int64_t micro_batch, int64_t grad_accum, int64_t fsdp, int64_t fsdp_rank) {
  FW_CHECK(g.rows == micro_batch * grad_accum, "select_rows: the batch has ", g.rows,
           " rows; train.micro_batch x train.grad_accum = ", micro_batch * grad_accum);
  const int64_t per_rank = micro_batch / fsdp;
  RlBatch b;
  b.rows = per_rank * grad_accum;
  b.seq = g.seq;
  for (int64_t m = 0; m < grad_accum; ++m) {
    const int64_t first = m * micro_batch + fsdp_rank * per_rank;
    copy_rows(g.tokens, b.tokens, first, per_rank, g.seq);
    copy_rows(g.targets, b.targets, first, per_rank, g.seq);
    copy_rows(g.mask, b.mask, first, per_rank, g.seq);
    copy_rows(g.advantage, b.advantage, first, per_rank, g.seq);
    copy_rows(g.old_logprob, b.old_logprob, first, per_rank, g.seq);
    copy_rows(g.infer_logprob, b.infer_logprob, first, per_rank, g.seq);
    copy_rows(g.ref_logprob, b.ref_logprob, first, per_rank, g.seq);
    copy_rows(g.pair_id, b.pair_id, first, per_rank, 1);
    copy_rows(g.chosen, b.chosen, first, per_rank, 1);
  }
  return b;
}

RlBatch reorder_tokens(const RlBatch& rows, const std::vector<int64_t>& positions, int64_t local_seq) {
  RlBatch b;
  b.rows = rows.rows;
  b.seq = local_seq;
  auto gather = [&](const auto& from, auto& to) {
    if (from.empty()) return;
    to.resize(positions.size());
    for (size_t i = 0; i < positions.size(); ++i) to[i] = from[positions[i]];
  };
  gather(rows.tokens, b.tokens);
  gather(rows.targets, b.targets);
  gather(rows.mask, b.mask);
  gather(rows.advantage, b.advantage);
  gather(rows.old_logprob, b.old_logprob);
  gather(rows.infer_logprob, b.infer_logprob);
  gather(rows.ref_logprob, b.ref_logprob);
  b.pair_id = rows.pair_id;
  b.chosen = rows.chosen;
  return b;
}

}  // namespace flywheel
