// Softmax cross-entropy over a vocabulary, fused with its gradient so logits can be turned into
// dlogits in place (the LM head processes token chunks; the full [tokens, vocab] logits never exist).
#pragma once

#include <cstdint>

namespace flywheel::ops {

// For each row r of logits[n, V]:
//   logp_r = logits[r, target_r] - logsumexp(logits[r, :])          (written to target_logprob if non-null)
//   loss  += weight_r * (-logp_r)                                    (returned, summed in double)
// If compute_grad, logits[r, :] is overwritten by d loss / d logits = weight_r * (softmax_r - onehot(target_r)).
// Rows with weight 0 still get their logprob; their gradient row is zero.
template <typename T>
double cross_entropy(T* logits, const int32_t* targets, const float* weights, int64_t n, int64_t vocab,
                     bool compute_grad, T* target_logprob = nullptr);

}  // namespace flywheel::ops
