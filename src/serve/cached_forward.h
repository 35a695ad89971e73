// The model's forward pass over new tokens of several sequences at once, reading and extending a
// KV cache: the decode engine's prefill (a prompt chunk) and decode (one token per sequence) steps.
//
// It is the trainer's own forward (Transformer::forward_with, the same layer code) with a
// CachedAttention as the attention context: all chunks' tokens are stacked into one [N, d] matrix
// for every per-row op and matrix product (with the batch-invariant kernel a row's bits do not
// depend on its neighbours), while attention runs per chunk against its own slot's cache
// (attention with seq = count, seq_k = start + count, q_offset = start). So the hidden state of a
// token at position p is bit-identical to the trainer's at p by construction (tested in
// test_decode.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "core/buffer.h"
#include "model/attention_context.h"
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

// Attention of stacked chunks against the KV cache: RoPE positions are each chunk's own, and a
// layer's call first appends the chunks' K/V rows to their slots, then attends each chunk's queries
// over keys [0, start + count) of its slot. Forward only (a cache has no backward).
class CachedAttention final : public AttentionContext {
 public:
  CachedAttention(KvCache& cache, const std::vector<CachedChunk>& chunks);
  std::vector<int64_t> positions(int64_t batch, int64_t seq) const override;
  void forward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq, const float* q,
               const float* k, const float* v, float* attn, float* lse) override;
  void backward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq, const float* q,
                const float* k, const float* v, const float* attn, const float* lse, const float* dattn, float* dq,
                float* dk, float* dv) override;

 private:
  KvCache& cache_;
  const std::vector<CachedChunk>& chunks_;
  std::vector<int64_t> first_row_;  // row of each chunk in the stacked matrix; last entry: N
};

// Runs the chunks through every layer (writing their K/V into the cache) and leaves in
// last_hidden[chunks, d] the final-normed hidden state of each chunk's last token -- the input of
// the LM head. The model must use forward_kernels = "invariant" and hold every layer.
void cached_forward(Transformer& model, KvCache& cache, const std::vector<CachedChunk>& chunks,
                    Buffer<float>& last_hidden);

}  // namespace flywheel
