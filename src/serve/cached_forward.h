// The model's forward pass over new tokens of several sequences at once, reading and extending a
// KV cache: the decode engine's prefill (a prompt chunk) and decode (one token per sequence) steps.
//
// All chunks' tokens are stacked into one [N, d] matrix for every matrix product (with the
// batch-invariant kernel, a row's bits do not depend on its neighbours), while attention runs per
// chunk against its own slot's cache (ops::attention_forward with seq = count, seq_k = start +
// count, q_offset = start). Every other op (RMSNorm, RoPE, SwiGLU, MoE routing and combine,
// residual adds) is the one the trainer's full-sequence forward runs, per row, so the hidden state
// of a token at position p is bit-identical to the trainer's at p (tested in test_decode.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "model/transformer.h"
#include "serve/kv_cache.h"

namespace flywheel {

// `count` new tokens of the sequence in cache slot `slot`, at positions [start, start + count);
// positions [0, start) must already be in the cache.
struct CachedChunk {
  int64_t slot = 0;
  int64_t start = 0;
  const int32_t* tokens = nullptr;
  int64_t count = 0;
};

// Runs the chunks through every layer (writing their K/V into the cache) and leaves in
// last_hidden[chunks, d] the final-normed hidden state of each chunk's last token -- the input of
// the LM head. The model must use forward_kernels = "invariant" and hold every layer.
void cached_forward(const Transformer& model, KvCache& cache, const std::vector<CachedChunk>& chunks,
                    Buffer<float>& last_hidden);

}  // namespace flywheel
