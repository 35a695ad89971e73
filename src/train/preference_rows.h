// DPO training rows from preference pairs (data/preference_data.h): the chosen and rejected side of
// a pair become two rows tokenized like SFT data (data/text_codec.h: the byte tokenizer's BOS prompt
// completion EOS, or the chat turns [user: prompt, assistant: completion]).
#pragma once

#include <cstdint>
#include <vector>

#include "data/preference_data.h"
#include "data/text_codec.h"
#include "train/loss_batch.h"

namespace flywheel {

// Rows [2k, 2k + 1] = (chosen, rejected) of pairs[indices[k]], each of seq tokens: inputs
// x[0..n-2], targets x[1..n-1], mask[t] = 1 where targets[t] is a completion token or EOS; a
// sequence longer than seq + 1 tokens is cut at the end; the rest is PAD with mask 0.
// pair_id = k (unique within the batch), chosen = 1 / 0. ref_logprob is left empty: the caller
// fills it from the frozen reference policy (the initial weights).
LossBatch make_preference_batch(const TextCodec& codec, const std::vector<PreferencePair>& pairs,
                                const std::vector<int64_t>& indices, int64_t seq);

// One side of a pair: the string layout as an SFT example, the conversational one as the prompt's
// messages answered by `completion` (loss on that reply only).
TokenizedSample preference_side(const TextCodec& codec, const PreferencePair& pair, const std::string& completion);

// At start-up, before any step: with a Hugging Face tokenizer every side must fit in a row of seq + 1
// tokens; the conversational layout needs one. Errors name the file (`path`) and line.
void check_preference_rows(const TextCodec& codec, const std::vector<PreferencePair>& pairs, const std::string& path,
                           int64_t seq);

}  // namespace flywheel
