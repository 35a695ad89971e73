#include "rl/rl_rows.h"

#include "core/error.h"
#include "data/tokenizer.h"

namespace flywheel {

LossBatch rollout_rows(const std::vector<RolloutSample>& samples, const std::vector<float>& row_advantage, int64_t seq) {
  FW_CHECK(row_advantage.size() == samples.size(), "rollout_rows: ", samples.size(), " samples but ",
           row_advantage.size(), " advantages");
  LossBatch b;
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

}  // namespace flywheel
