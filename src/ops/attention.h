// Causal grouped-query attention, tiled with an online softmax (FlashAttention-2 style), on the CPU.
//
// Never materialises a T x T score matrix: forward keeps per-row running max / sum over key tiles
// and stores only the output and the row log-sum-exp; backward recomputes score tiles from
// q, k and the saved log-sum-exp. Memory is O(T * head_dim) per head plus one tile per thread.
//
// Layouts (row-major, token-major, exactly what the Q/K/V projections produce):
//   q, out, dq : [batch, seq, n_heads,    head_dim]
//   k, v, dk, dv: [batch, seq, n_kv_heads, head_dim]
//   lse        : [batch, n_heads, seq]   natural-log sum of exp(scaled scores) per query row
// Query head h reads key/value head h / (n_heads / n_kv_heads).
// Scores are scale * q.k with scale = 1/sqrt(head_dim); query t attends keys 0..t (causal).
//
// Determinism: results are bit-identical for a given thread count and inputs (no atomics; every
// output element is written by one thread in a fixed order).
#pragma once

#include <cstdint>

namespace flywheel::ops {

struct AttentionShape {
  int64_t batch = 1;
  int64_t seq = 1;
  int64_t n_heads = 1;
  int64_t n_kv_heads = 1;
  int64_t head_dim = 1;
};

template <typename T>
void attention_forward(const AttentionShape& shape, const T* q, const T* k, const T* v, T* out, T* lse);

// Writes (overwrites) dq, dk, dv. Needs the forward's out and lse.
template <typename T>
void attention_backward(const AttentionShape& shape, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv);

}  // namespace flywheel::ops
