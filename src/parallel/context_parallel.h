// Context parallelism: each sequence of T tokens is cut into 2C chunks of S = T / 2C tokens and cp
// rank c holds chunks c and 2C-1-c (a cheap chunk paired with an expensive one, so causal attention
// work is balanced across ranks). Everything but attention is per token, so a rank runs the model on
// its 2S tokens per row; attention all-gathers keys and values over the cp group, attends from its
// two query chunks at their global positions, and reduce-scatters the key/value gradients back to
// their owners. Activations other than the gathered K/V (kept only inside the attention call) stay
// local: no rank holds the whole sequence's activations.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/comm.h"

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

}  // namespace flywheel
