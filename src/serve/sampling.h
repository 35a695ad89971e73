// Token sampling for the decode engine: temperature, then top-k, then top-p (nucleus) truncation.
//
// The rule (sample_token), for scaled logits z = logits * (1 / temperature) over the vocabulary:
//   1. order ids by z descending, ties by lower id first;
//   2. top-k (k > 0): keep the first k ids of that order;
//   3. p_i = exp(z_i - max z) / total, total = the sum over the kept ids in id order (double
//      precision), i.e. softmax renormalised over the kept set; top-p < 1: keep the shortest prefix
//      of the order whose running mass reaches top_p (at least one id); top_p = 1 keeps every id;
//   4. renormalise the kept ids to mass 1 (mass: their p summed in order, the prefix's for top-p,
//      in id order otherwise), draw u = uniform[0, 1) (53 bits) from the request's counter RNG and
//      return the first id of the order whose running sum of p_i / mass exceeds u (the last kept one
//      if rounding leaves u unmatched).
// sample_token orders the ids lazily, a block at a time, and stops at the drawn one: a peaked
// distribution over a 151,936-id vocabulary costs two passes over the logits, not a sort of them.
// tests/unit/test_decode.cpp compares sample_token, draw for draw, with the rule written out with a
// full sort.
// top_k = 1 is greedy decoding (the argmax, lowest id on ties). References: top-k, Fan et al. 2018
// "Hierarchical Neural Story Generation"; top-p, Holtzman et al. 2020 "The Curious Case of Neural
// Text Degeneration".
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace flywheel {

struct SamplingParams {
  float temperature = 1.0f;  // > 0; logits are multiplied by 1/temperature (Transformer::set_logit_scale)
  float top_p = 1.0f;        // (0, 1]
  int64_t top_k = 0;         // 0: off
  int64_t max_new_tokens = 32;
  std::vector<int32_t> stop_tokens;  // generation ends after emitting one of these (it is included)
  int64_t top_logprobs = 0;          // report the logprobs of this many most likely ids at each token (0: none)
};

// Most likely tokens are reported by id and log-probability (of the scaled, untruncated distribution).
struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0;
  bool operator==(const TokenLogprob&) const = default;
};

// The `count` ids of highest scaled logit, highest first, ties by lower id first (step 1 of the rule).
std::vector<int32_t> top_ids(const float* scaled_logits, int64_t vocab, int64_t count);

// Throws naming the field, its value and the allowed range (vocab: for stop token ids).
void validate_sampling(const SamplingParams& params, int64_t vocab);

// The logit scale for a temperature: 1.0f / temperature, the one float op both the engine and the
// trainer's scoring (Transformer::set_logit_scale) use.
inline float logit_scale_for(float temperature) { return 1.0f / temperature; }

// Draws one id from scaled_logits[vocab] by the rule above, consuming one draw of rng.
int32_t sample_token(const float* scaled_logits, int64_t vocab, const SamplingParams& params, CounterRng& rng);

// The ids that survive top-k and top-p, in order (step 1-3 of the rule) with their renormalised
// probabilities p_i / mass (for tests of the truncation).
struct SamplingCandidates {
  std::vector<int32_t> ids;
  std::vector<double> probs;  // sums to 1 over ids
};
SamplingCandidates sampling_candidates(const float* scaled_logits, int64_t vocab, const SamplingParams& params);

}  // namespace flywheel
