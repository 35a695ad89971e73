// Rotary position embedding (Su et al. 2021), Hugging Face "rotate_half" convention:
// for a head vector x of width hd and half = hd/2, inv_freq[j] = theta^(-2j/hd), a = pos * inv_freq[j]:
//   x'[j]        = x[j] cos a - x[j+half] sin a
//   x'[j + half] = x[j+half] cos a + x[j] sin a
// Backward is the rotation by -a (the map is orthogonal).
//
// Llama-3 frequency scaling (RopeScaling::kLlama3) rescales inv_freq before the table is built; the
// rule is that of Hugging Face transformers' `_compute_llama3_parameters`
// (transformers/modeling_rope_utils.py), with wavelen = 2 pi / inv_freq in tokens and L the original
// context length (original_max_positions):
//   wavelen > L / low_freq_factor   (long waves):  inv_freq / factor
//   wavelen < L / high_freq_factor  (short waves): inv_freq           (unchanged)
//   otherwise, s = (L / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor):
//                                                  (1 - s) inv_freq / factor + s inv_freq
#pragma once

#include <cstdint>
#include <vector>

namespace flywheel::ops {

struct RopeScaling {
  enum class Type { kNone, kLlama3 };
  Type type = Type::kNone;
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_positions = 8192.0;  // the pre-training context length L, in tokens
};

// inv_freq[j] = theta^(-2j / head_dim) for j < head_dim / 2 (radians per token), then scaled.
std::vector<double> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling = {});

// cos/sin for positions [0, max_positions), computed in double, stored per T.
template <typename T>
struct RopeTable {
  RopeTable(int64_t head_dim, int64_t max_positions, double theta, const RopeScaling& scaling = {});
  int64_t head_dim, max_positions;
  std::vector<T> cos, sin;  // [max_positions, head_dim / 2]
};

// In place on x[batch, seq, heads, head_dim]; position of token t is position_offset + t.
// inverse = true applies the backward (rotation by -angle).
template <typename T>
void rope_apply(const RopeTable<T>& table, T* x, int64_t batch, int64_t seq, int64_t heads,
                int64_t position_offset = 0, bool inverse = false);

// As above, but token t of every row sits at positions[t] (context parallelism: a rank's tokens are
// two chunks of the sequence at different offsets).
template <typename T>
void rope_apply_at(const RopeTable<T>& table, T* x, int64_t batch, int64_t seq, int64_t heads,
                   const int64_t* positions, bool inverse = false);

}  // namespace flywheel::ops
