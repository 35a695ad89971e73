#include "parallel/context_parallel.h"

#include <cstring>

#include "backend/backend.h"
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

namespace {

// Shape of one local half's attention: S queries at their global offset against the gathered keys
// of the whole sequence (later keys are masked and skipped by the op).
ops::AttentionShape half_shape(const AttentionHeads& heads, const ContextSplit& split, int half, int64_t batch,
                               int64_t seq) {
  const int64_t S = seq / 2;
  ops::AttentionShape shape{batch, S, heads.n_heads, heads.n_kv_heads, heads.head_dim};
  shape.seq_k = 2 * split.ranks() * S;
  shape.q_offset = split.chunk_of(half) * S;
  return shape;
}

}  // namespace

std::vector<int64_t> ContextParallelAttention::positions(int64_t batch, int64_t seq) const {
  const std::vector<int64_t> row = local_positions(split_, seq);
  std::vector<int64_t> all;
  all.reserve(static_cast<size_t>(batch * seq));
  for (int64_t b = 0; b < batch; ++b) all.insert(all.end(), row.begin(), row.end());
  return all;
}

void ContextParallelAttention::forward(Backend& backend, int, const AttentionHeads& heads, int64_t batch, int64_t seq,
                                       const float* q, const float* k, const float* v, float* attn, float* lse) {
  const int64_t qw = heads.q_width(), kvw = heads.kv_width();
  const int64_t S = seq / 2, T = 2 * split_.ranks() * S;
  Buffer<float> k_all(batch * T * kvw), v_all(batch * T * kvw), q_half(batch * S * qw), out_half(batch * S * qw);
  gather_sequence(split_, k, k_all.data(), batch, seq, kvw);
  gather_sequence(split_, v, v_all.data(), batch, seq, kvw);
  for (int half = 0; half < 2; ++half) {
    copy_half_out(q, q_half.data(), half, batch, seq, qw);
    backend.attention(half_shape(heads, split_, half, batch, seq), q_half.data(), k_all.data(), v_all.data(),
                      out_half.data(), lse + half * batch * heads.n_heads * S);
    copy_half_in(out_half.data(), attn, half, batch, seq, qw);
  }
}

void ContextParallelAttention::backward(Backend& backend, int, const AttentionHeads& heads, int64_t batch,
                                        int64_t seq, const float* q, const float* k, const float* v, const float* attn,
                                        const float* lse, const float* dattn, float* dq, float* dk, float* dv) {
  const int64_t qw = heads.q_width(), kvw = heads.kv_width();
  const int64_t S = seq / 2, T = 2 * split_.ranks() * S;
  Buffer<float> k_all(batch * T * kvw), v_all(batch * T * kvw);
  gather_sequence(split_, k, k_all.data(), batch, seq, kvw);  // re-gathered: not kept from forward
  gather_sequence(split_, v, v_all.data(), batch, seq, kvw);
  Buffer<float> dk_all(batch * T * kvw, 0.0f), dv_all(batch * T * kvw, 0.0f), dk_part(batch * T * kvw),
      dv_part(batch * T * kvw);
  Buffer<float> q_half(batch * S * qw), out_half(batch * S * qw), dout_half(batch * S * qw), dq_half(batch * S * qw);
  for (int half = 0; half < 2; ++half) {
    copy_half_out(q, q_half.data(), half, batch, seq, qw);
    copy_half_out(attn, out_half.data(), half, batch, seq, qw);
    copy_half_out(dattn, dout_half.data(), half, batch, seq, qw);
    backend.attention_backward(half_shape(heads, split_, half, batch, seq), q_half.data(), k_all.data(),
                               v_all.data(), out_half.data(), lse + half * batch * heads.n_heads * S,
                               dout_half.data(), dq_half.data(), dk_part.data(), dv_part.data());
    backend.add_in_place(dk_all.data(), dk_part.data(), batch * T * kvw);
    backend.add_in_place(dv_all.data(), dv_part.data(), batch * T * kvw);
    copy_half_in(dq_half.data(), dq, half, batch, seq, qw);
  }
  reduce_scatter_sequence(split_, dk_all.data(), dk, batch, seq, kvw);
  reduce_scatter_sequence(split_, dv_all.data(), dv, batch, seq, kvw);
}

}  // namespace flywheel
