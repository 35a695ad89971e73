// Context parallelism: each sequence of T tokens is cut into 2C chunks of S = T / 2C tokens and cp
// rank c holds chunks c and 2C-1-c (a cheap chunk paired with an expensive one, so causal attention
// work is balanced across ranks). Everything but attention is per token, so a rank runs the model on
// its 2S tokens per row; attention all-gathers keys and values over the cp group, attends from its
// two query chunks at their global positions, and reduce-scatters the key/value gradients back to
// their owners. Activations other than the gathered K/V (kept only inside the attention call) stay
// local: no rank holds the whole sequence's activations.
//
// The model knows none of this: the trainer installs a ContextParallelAttention as the model's
// AttentionContext (model/attention_context.h), and the layers call it like any other.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/comm.h"
#include "model/attention_context.h"

namespace flywheel {

struct ContextSplit {
  Comm* group = nullptr;  // null or a group of one: whole sequences, no splitting

  int ranks() const { return group ? group->size() : 1; }
  int rank() const { return group ? group->rank() : 0; }
  bool active() const { return ranks() > 1; }
  // Global chunk index of local half h (0 or 1) for this rank, or for `owner`.
  int chunk_of(int half) const { return chunk_of(rank(), half); }
  int chunk_of(int owner, int half) const { return half == 0 ? owner : 2 * ranks() - 1 - owner; }
};

// Global position of each of a rank's local_seq tokens (local_seq = 2S).
std::vector<int64_t> local_positions(const ContextSplit& split, int64_t local_seq);

// [rows, local_seq, width] on every rank -> [rows, 2C * S, width] in global position order.
void gather_sequence(const ContextSplit& split, const float* local, float* global, int64_t rows,
                     int64_t local_seq, int64_t width);
// Sum over ranks of [rows, T, width], each rank keeping its own chunks: [rows, local_seq, width].
void reduce_scatter_sequence(const ContextSplit& split, const float* global, float* local, int64_t rows,
                             int64_t local_seq, int64_t width);
// Copies half h of every row, [rows, local_seq, width] <-> [rows, local_seq / 2, width].
void copy_half_out(const float* local, float* half_rows, int half, int64_t rows, int64_t local_seq, int64_t width);
void copy_half_in(const float* half_rows, float* local, int half, int64_t rows, int64_t local_seq, int64_t width);

// The attention of a context-parallel rank: positions are its chunks' global positions; forward
// gathers K and V over the cp group and attends from each local chunk (query offset = the chunk's
// start) against the keys up to it; backward regathers K and V and reduce-scatters dK and dV.
// The lse buffer holds the two halves one after the other: [2][batch, n_heads, seq / 2].
class ContextParallelAttention final : public AttentionContext {
 public:
  explicit ContextParallelAttention(Comm& cp) : split_{&cp} {}
  std::vector<int64_t> positions(int64_t batch, int64_t seq) const override;
  void forward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq, const float* q,
               const float* k, const float* v, float* attn, float* lse) override;
  void backward(Backend& backend, int layer, const AttentionHeads& heads, int64_t batch, int64_t seq, const float* q,
                const float* k, const float* v, const float* attn, const float* lse, const float* dattn, float* dq,
                float* dk, float* dv) override;

 private:
  ContextSplit split_;
};

}  // namespace flywheel
