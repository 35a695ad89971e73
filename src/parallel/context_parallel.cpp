#include "parallel/context_parallel.h"

#include <cstring>

#include "core/buffer.h"
#include "core/error.h"

namespace flywheel {

std::vector<int64_t> local_positions(const ContextSplit& split, int64_t local_seq) {
  std::vector<int64_t> positions(local_seq);
  const int64_t S = local_seq / 2;
  for (int64_t t = 0; t < local_seq; ++t)
    positions[t] = split.active() ? split.chunk_of(static_cast<int>(t / S)) * S + t % S : t;
  return positions;
}

// Rank-major blocks [rank][rows][local_seq][width] <-> global [rows][T][width].
void gather_sequence(const ContextSplit& split, const float* local, float* global, int64_t rows,
                     int64_t local_seq, int64_t width) {
  const int C = split.ranks();
  const int64_t S = local_seq / 2, T = 2 * C * S, block = rows * local_seq * width;
  Buffer<float> blocks(C * block);
  split.group->all_gather(local, block, blocks.data());
  for (int owner = 0; owner < C; ++owner)
    for (int64_t r = 0; r < rows; ++r)
      for (int half = 0; half < 2; ++half)
        std::memcpy(global + (r * T + split.chunk_of(owner, half) * S) * width,
                    blocks.data() + owner * block + (r * local_seq + half * S) * width, sizeof(float) * S * width);
}

void reduce_scatter_sequence(const ContextSplit& split, const float* global, float* local, int64_t rows,
                             int64_t local_seq, int64_t width) {
  const int C = split.ranks();
  const int64_t S = local_seq / 2, T = 2 * C * S, block = rows * local_seq * width;
  Buffer<float> blocks(C * block);
  for (int owner = 0; owner < C; ++owner)
    for (int64_t r = 0; r < rows; ++r)
      for (int half = 0; half < 2; ++half)
        std::memcpy(blocks.data() + owner * block + (r * local_seq + half * S) * width,
                    global + (r * T + split.chunk_of(owner, half) * S) * width, sizeof(float) * S * width);
  split.group->reduce_scatter_sum(blocks.data(), local, block);
}

void copy_half_out(const float* local, float* half_rows, int half, int64_t rows, int64_t local_seq, int64_t width) {
  const int64_t S = local_seq / 2;
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(half_rows + r * S * width, local + (r * local_seq + half * S) * width, sizeof(float) * S * width);
}

void copy_half_in(const float* half_rows, float* local, int half, int64_t rows, int64_t local_seq, int64_t width) {
  const int64_t S = local_seq / 2;
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(local + (r * local_seq + half * S) * width, half_rows + r * S * width, sizeof(float) * S * width);
}

}  // namespace flywheel
