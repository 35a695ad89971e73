#include "ops/rope.h"

#include <cmath>
#include <numbers>
#include <vector>

#include "core/error.h"

namespace flywheel::ops {

namespace {
// The Llama-3 rule of rope.h for one frequency.
double llama3_scaled(double inv_freq, const RopeScaling& s) {
  const double wavelen = 2.0 * std::numbers::pi / inv_freq;
  const double low_freq_wavelen = s.original_max_positions / s.low_freq_factor;
  const double high_freq_wavelen = s.original_max_positions / s.high_freq_factor;
  if (wavelen > low_freq_wavelen) return inv_freq / s.factor;
  if (wavelen < high_freq_wavelen) return inv_freq;
  const double smooth =
      (s.original_max_positions / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1.0 - smooth) * inv_freq / s.factor + smooth * inv_freq;
}
}  // namespace

std::vector<double> rope_inv_freq(int64_t head_dim, double theta, const RopeScaling& scaling) {
  FW_CHECK(head_dim % 2 == 0, "RoPE needs an even head_dim, got ", head_dim);
  std::vector<double> inv_freq(static_cast<size_t>(head_dim / 2));
  for (int64_t j = 0; j < head_dim / 2; ++j) {
    inv_freq[j] = std::pow(theta, -2.0 * static_cast<double>(j) / static_cast<double>(head_dim));
    if (scaling.type == RopeScaling::Type::kLlama3) inv_freq[j] = llama3_scaled(inv_freq[j], scaling);
  }
  return inv_freq;
}

template <typename T>
RopeTable<T>::RopeTable(int64_t head_dim_, int64_t max_positions_, double theta, const RopeScaling& scaling)
    : head_dim(head_dim_), max_positions(max_positions_) {
  const std::vector<double> inv_freq = rope_inv_freq(head_dim, theta, scaling);
  const int64_t half = head_dim / 2;
  cos.resize(static_cast<size_t>(max_positions * half));
  sin.resize(cos.size());
  for (int64_t p = 0; p < max_positions; ++p)
    for (int64_t j = 0; j < half; ++j) {
      const double angle = static_cast<double>(p) * inv_freq[j];
      cos[p * half + j] = static_cast<T>(std::cos(angle));
      sin[p * half + j] = static_cast<T>(std::sin(angle));
    }
}

template <typename T>
void rope_apply_at(const RopeTable<T>& table, T* x, int64_t batch, int64_t seq, int64_t heads,
                   const int64_t* positions, bool inverse) {
  const int64_t hd = table.head_dim, half = hd / 2;
  for (int64_t t = 0; t < seq; ++t)
    FW_CHECK(positions[t] >= 0 && positions[t] < table.max_positions, "RoPE position ", positions[t],
             " is beyond the table (max_seq_len ", table.max_positions, ")");
  const T sign = inverse ? T(-1) : T(1);
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t) {
      const T* c = table.cos.data() + positions[t] * half;
      const T* s = table.sin.data() + positions[t] * half;
      for (int64_t h = 0; h < heads; ++h) {
        T* v = x + ((b * seq + t) * heads + h) * hd;
        for (int64_t j = 0; j < half; ++j) {
          const T lo = v[j], hi = v[j + half], sn = sign * s[j];
          v[j] = lo * c[j] - hi * sn;
          v[j + half] = hi * c[j] + lo * sn;
        }
      }
    }
}

template <typename T>
void rope_apply(const RopeTable<T>& table, T* x, int64_t batch, int64_t seq, int64_t heads,
                int64_t position_offset, bool inverse) {
  FW_CHECK(position_offset >= 0 && position_offset + seq <= table.max_positions, "RoPE position ",
           position_offset + seq - 1, " is beyond the table (max_seq_len ", table.max_positions, ")");
  std::vector<int64_t> positions(seq);
  for (int64_t t = 0; t < seq; ++t) positions[t] = position_offset + t;
  rope_apply_at(table, x, batch, seq, heads, positions.data(), inverse);
}

template struct RopeTable<float>;
template struct RopeTable<double>;
template void rope_apply<float>(const RopeTable<float>&, float*, int64_t, int64_t, int64_t, int64_t, bool);
template void rope_apply<double>(const RopeTable<double>&, double*, int64_t, int64_t, int64_t, int64_t, bool);
template void rope_apply_at<float>(const RopeTable<float>&, float*, int64_t, int64_t, int64_t, const int64_t*, bool);
template void rope_apply_at<double>(const RopeTable<double>&, double*, int64_t, int64_t, int64_t, const int64_t*,
                                    bool);

}  // namespace flywheel::ops
