// Preference pairs for DPO: a JSONL file of {"prompt": "...", "chosen": "...", "rejected": "..."}
// (one object per line; other fields ignored; blank lines skipped), turned into RlBatch rows.
//
// Each side is tokenized as SFT data is (train/tokenizer.h): BOS + prompt bytes + completion bytes +
// EOS, so the mask covers the completion and EOS; the chosen and rejected rows of a pair share the
// prompt, and DPO compares their summed logps over the mask tokens.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rl/loss.h"

namespace flywheel {

struct PreferencePair {
  std::string prompt, chosen, rejected;
  int64_t line = 0;  // 1-based line in the file, for messages
};

// Reads and validates the whole file. Errors name the file and line: unreadable file, invalid
// JSON, not an object, a missing or non-string field, a prompt so long that no completion token
// fits in seq_len (BOS + prompt + 1 token must fit in seq_len + 1 tokens), or no pairs at all.
std::vector<PreferencePair> read_preference_jsonl(const std::string& path, int64_t seq_len);

// Rows [2k, 2k + 1] = (chosen, rejected) of pairs[indices[k]], each of seq tokens: inputs
// x[0..n-2], targets x[1..n-1], mask[t] = 1 where targets[t] is a completion token or EOS; a
// sequence longer than seq + 1 tokens is cut at the end; the rest is PAD with mask 0.
// pair_id = k (unique within the batch), chosen = 1 / 0. ref_logprob is left empty: the caller
// fills it from the frozen reference policy (the initial weights).
RlBatch make_preference_batch(const std::vector<PreferencePair>& pairs, const std::vector<int64_t>& indices,
                              int64_t seq);

}  // namespace flywheel
