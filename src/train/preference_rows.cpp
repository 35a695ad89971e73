// DPO rows from preference pairs: see preference_rows.h.
#include "train/preference_rows.h"

#include <algorithm>

#include "core/error.h"
#include "data/data_source.h"

namespace flywheel {

TokenizedSample preference_side(const TextCodec& codec, const PreferencePair& pair, const std::string& completion) {
  if (pair.prompt_messages.empty()) return codec.encode_example(pair.prompt, completion);
  return codec.encode_reply(pair.prompt_messages, completion);
}

void check_preference_rows(const TextCodec& codec, const std::vector<PreferencePair>& pairs, const std::string& path,
                           int64_t seq) {
  for (const PreferencePair& pair : pairs) {
    FW_INPUT_CHECK(pair.prompt_messages.empty() || !codec.byte_level(), "preference file '", path, "' line ",
                   pair.line, ": a conversational prompt needs a Hugging Face tokenizer and its chat format (set ",
                   "data.tokenizer or model.from_hf)");
    if (codec.byte_level()) continue;  // read_preference_jsonl bounded the byte rows
    for (const std::string* side : {&pair.chosen, &pair.rejected}) {
      const size_t tokens = preference_side(codec, pair, *side).tokens.size();
      FW_INPUT_CHECK(static_cast<int64_t>(tokens) <= seq + 1, "preference file '", path, "' line ", pair.line, ": the ",
                     side == &pair.chosen ? "chosen" : "rejected", " conversation is ", tokens,
                     " tokens, longer than a row of train.seq_len + 1 = ", seq + 1,
                     " tokens: raise train.seq_len or shorten it");
    }
  }
}

namespace {

// One row of the example prompt -> completion, as Sampler::make_batch lays out an SFT sample.
void fill_row(const TextCodec& codec, LossBatch& batch, int64_t row, const PreferencePair& pair,
              const std::string& completion) {
  const TokenizedSample sample = preference_side(codec, pair, completion);
  const int64_t n = std::min<int64_t>(static_cast<int64_t>(sample.tokens.size()), batch.seq + 1);
  for (int64_t t = 0; t + 1 < n; ++t) {
    const int64_t i = row * batch.seq + t;
    batch.tokens[i] = sample.tokens[t];
    batch.targets[i] = sample.tokens[t + 1];
    batch.mask[i] = sample.is_target(static_cast<size_t>(t + 1)) ? 1.0f : 0.0f;
  }
}

}  // namespace

LossBatch make_preference_batch(const TextCodec& codec, const std::vector<PreferencePair>& pairs,
                                const std::vector<int64_t>& indices, int64_t seq) {
  FW_CHECK(seq >= 1, "seq=", seq, " must be >= 1");
  LossBatch batch;
  batch.rows = 2 * static_cast<int64_t>(indices.size());
  batch.seq = seq;
  const int64_t n = batch.rows * seq;
  batch.tokens.assign(n, codec.pad_id());
  batch.targets.assign(n, codec.pad_id());
  batch.mask.assign(n, 0.0f);
  for (size_t k = 0; k < indices.size(); ++k) {
    const int64_t index = indices[k];
    FW_CHECK(index >= 0 && index < static_cast<int64_t>(pairs.size()), "preference pair index ", index,
             " is out of range; allowed: 0..", static_cast<int64_t>(pairs.size()) - 1);
    const PreferencePair& pair = pairs[index];
    const auto row = static_cast<int64_t>(2 * k);
    fill_row(codec, batch, row, pair, pair.chosen);
    fill_row(codec, batch, row + 1, pair, pair.rejected);
    batch.pair_id.insert(batch.pair_id.end(), {static_cast<int64_t>(k), static_cast<int64_t>(k)});
    batch.chosen.insert(batch.chosen.end(), {int8_t{1}, int8_t{0}});
  }
  return batch;
}

}  // namespace flywheel
