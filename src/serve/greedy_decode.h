// Greedy decoding by full recomputation: every new token reruns the forward over the whole prefix.
// O(T^2) per sequence: the plain, obviously correct path that the KV-cache engine is tested against.
#pragma once

#include <cstdint>
#include <vector>

#include "model/transformer.h"

namespace flywheel {

// Appends up to max_new_tokens argmax tokens to `prompt` (ties: lowest id), stopping after
// stop_token or at the model's max_seq_len. Returns only the generated tokens.
std::vector<int32_t> greedy_decode(Transformer& model, const std::vector<int32_t>& prompt, int64_t max_new_tokens,
                                   int32_t stop_token);

}  // namespace flywheel
