// Where a layer's queries find their keys. The attention half of a layer (attention_block.h) asks
// its context for the position of every row (for RoPE) and hands it q, k, v to attend with; the
// model knows nothing of how rows are laid out across ranks or decode steps. Implementations:
//   FullSequenceAttention (here)      every row's whole sequence is on this rank: training on one
//                                     rank or on data-parallel ranks, and the logprob passes
//   ContextParallelAttention          each sequence split over the cp ranks (parallel/context_parallel.h)
//   CachedAttention                   new tokens of many sequences against a KV cache (serve/cached_attention.h)
// One layer code path runs all three, so a token's hidden state is computed by the same ops in the
// same order whichever way it is reached: that is what makes serving reproduce training's bits.
#pragma once

#include <cstdint>
#include <vector>

namespace flywheel {

class Backend;

// Head layout of one attention call: q rows are n_heads * head_dim wide, k and v rows n_kv_heads * head_dim.
struct AttentionHeads {
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int64_t q_width() const { return n_heads * head_dim; }
  int64_t kv_width() const { return n_kv_heads * head_dim; }
};

class AttentionContext {
 public:
  virtual ~AttentionContext() = default;
  // Position (in its sequence) of each of the batch x seq rows, row-major: rows * seq entries.
  virtual std::vector<int64_t> positions(int64_t batch, int64_t seq) const = 0;
  // attn[batch * seq, q_width] = causal attention of the rows' queries (RoPE applied) over the keys
  // this context reaches, k and v being the rows' own keys and values; lse[batch * n_heads * seq]
  // receives the per-row log-sum-exp for backward (its layout is the context's own). `layer` names
  // the decoder layer (a KV cache keeps one per layer).
  virtual void forward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq,
                       const float* q, const float* k, const float* v, float* attn, float* lse) = 0;
  // Gradients of forward's result: dq, dk, dv for the rows' own q, k, v (overwritten).
  virtual void backward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq,
                        const float* q, const float* k, const float* v, const float* attn, const float* lse,
                        const float* dattn, float* dq, float* dk, float* dv) = 0;
};

// Each row of the batch is one whole sequence at positions 0 .. seq-1 (the default context).
class FullSequenceAttention final : public AttentionContext {
 public:
  std::vector<int64_t> positions(int64_t batch, int64_t seq) const override;
  void forward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq, const float* q,
               const float* k, const float* v, float* attn, float* lse) override;
  void backward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq, const float* q,
                const float* k, const float* v, const float* attn, const float* lse, const float* dattn, float* dq,
                float* dk, float* dv) override;
};

}  // namespace flywheel
