// Causal grouped-query attention, tiled with an online softmax (FlashAttention-2 style), on the CPU.
//
// Never materialises a T x T score matrix: forward keeps per-row running max / sum over key tiles
// and stores only the output and the row log-sum-exp; backward recomputes score tiles from
// q, k and the saved log-sum-exp. Memory is O(T * head_dim) per head plus one tile per thread.
//
// Layouts (row-major, token-major, exactly what the Q/K/V projections produce), with
// seq_k = shape.seq_k, or shape.seq when that is 0:
//   q, out, dq  : [batch, seq,   n_heads,    head_dim]
//   k, v, dk, dv: [batch, seq_k, n_kv_heads, head_dim]
//   lse         : [batch, n_heads, seq]   natural-log sum of exp(scaled scores) per query row
// Query head h reads key/value head h / (n_heads / n_kv_heads).
// Scores are scale * q.k with scale = 1/sqrt(head_dim). Causality is in global positions: keys
// sit at positions 0..seq_k-1, query i of this call at q_offset + i, and a query at position p
// attends keys 0..p. With the defaults (seq_k = seq, q_offset = 0) that is ordinary causal
// self-attention: query t attends keys 0..t.
//
// Context parallelism: a rank that holds queries [q_offset, q_offset + seq) of a sequence and the
// gathered keys/values of positions [0, q_offset + seq) calls with seq_k = q_offset + seq; its out,
// lse and dq are the full call's rows, and the dk/dv summed over ranks are the full call's dk/dv
// (up to rounding: the sum over ranks adds the per-rank partial sums in another order).
// Requires q_offset >= 0 and q_offset + seq <= seq_k (every query's causal prefix is present);
// keys past q_offset + seq - 1 are allowed and get dk = dv = 0.
//
// Determinism: results are bit-identical run to run and for any thread count (no atomics; every
// output element is written by one thread in a fixed order that does not depend on the schedule).
#pragma once

#include <cstdint>

namespace flywheel::ops {

struct AttentionShape {
  int64_t batch = 1;
  int64_t seq = 1;
  int64_t n_heads = 1;
  int64_t n_kv_heads = 1;
  int64_t head_dim = 1;
  int64_t seq_k = 0;     // keys/values per sequence; 0 means seq_k = seq (self-attention)
  int64_t q_offset = 0;  // global position of this call's first query (query i sits at q_offset + i)
};

template <typename T>
void attention_forward(const AttentionShape& shape, const T* q, const T* k, const T* v, T* out, T* lse);

// Writes (overwrites) dq, dk, dv, dk/dv over all seq_k positions (exact zeros for keys that no
// query of this call can see). Needs the forward's out and lse.
template <typename T>
void attention_backward(const AttentionShape& shape, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv);

}  // namespace flywheel::ops
