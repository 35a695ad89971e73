// Batch-invariant linear layer (see linear_invariant.h for the arithmetic rule).
//
// Speed: a register-blocked kernel computes an R x C block of y (R rows of x against C rows of W,
// R, C <= 4) with R*C 16-lane accumulators; every block size runs the same per-element sequence
// (the rule), only how many elements share one pass over k differs. At n = 1 this is a GEMV that
// streams W once (memory-bound); for larger n, row panels of x stay in L2 while a strip of W rows
// is reused from L1 across the panel.
#include "ops/linear_invariant.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "core/bf16.h"
#include "ops/gemm.h"

namespace flywheel::ops {
namespace {

// ---- 16 lanes: one IEEE operation per lane per step, whatever the instruction set -------------------

#if defined(__AVX512F__)
struct Lanes {
  __m512 v;
};
inline Lanes lanes_zero() { return {_mm512_setzero_ps()}; }
inline Lanes lanes_load(const float* p) { return {_mm512_loadu_ps(p)}; }
// The first `count` (< 16) floats of p, the other lanes 0 (they add fma(0, 0, a) = a exactly).
inline Lanes lanes_load_tail(const float* p, int64_t count) {
  return {_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p)};
}
inline Lanes lanes_fma(Lanes a, Lanes b, Lanes c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline __m256 lanes_fold16(Lanes a) {  // lane l + lane l+8
  // The maskz forms: GCC 12's _mm512_extractf64x4_pd (also behind _mm512_castps512_ps256) trips
  // -Wuninitialized inside its own header.
  const __m512d both = _mm512_castps_pd(a.v);
  const __m256 lo = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, both, 0));
  const __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xF, both, 1));
  return _mm256_add_ps(lo, hi);
}
#elif defined(__AVX2__) && defined(__FMA__)
struct Lanes {
  __m256 lo, hi;  // lanes 0-7, 8-15
};
inline Lanes lanes_zero() { return {_mm256_setzero_ps(), _mm256_setzero_ps()}; }
inline Lanes lanes_load(const float* p) { return {_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
inline __m256 tail_half(const float* p, int64_t count) {  // count in [0, 8]
  const __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(count)), index);
  return _mm256_maskload_ps(p, mask);
}
inline Lanes lanes_load_tail(const float* p, int64_t count) {
  return {tail_half(p, std::min<int64_t>(count, 8)), tail_half(p + 8, std::max<int64_t>(count - 8, 0))};
}
inline Lanes lanes_fma(Lanes a, Lanes b, Lanes c) {
  return {_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
inline __m256 lanes_fold16(Lanes a) { return _mm256_add_ps(a.lo, a.hi); }
#else
struct Lanes {
  float v[16];
};
inline Lanes lanes_zero() { return {}; }
inline Lanes lanes_load(const float* p) {
  Lanes a;
  for (int l = 0; l < 16; ++l) a.v[l] = p[l];
  return a;
}
inline Lanes lanes_load_tail(const float* p, int64_t count) {
  Lanes a{};
  for (int64_t l = 0; l < count; ++l) a.v[l] = p[l];
  return a;
}
inline Lanes lanes_fma(Lanes a, Lanes b, Lanes c) {
  for (int l = 0; l < 16; ++l) c.v[l] = std::fma(a.v[l], b.v[l], c.v[l]);
  return c;
}
#endif

// The fixed tree: (l, l+8), then (l, l+4), (l, l+2), (0, 1).
#if defined(__AVX2__) || defined(__AVX512F__)
inline float lanes_sum(Lanes a) {
  const __m256 h8 = lanes_fold16(a);
  const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(h8), _mm256_extractf128_ps(h8, 1));
  const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
  return _mm_cvtss_f32(_mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1)));
}
#else
inline float lanes_sum(Lanes a) {
  for (int width = 8; width >= 1; width /= 2)
    for (int l = 0; l < width; ++l) a.v[l] += a.v[l + width];
  return a.v[0];
}
#endif

// ---- weight loads: fp32, or bf16 widened exactly (a bf16 value is the upper half of an fp32) -------

inline Lanes weight_load(const float* p) { return lanes_load(p); }
inline Lanes weight_load_tail(const float* p, int64_t count) { return lanes_load_tail(p, count); }

#if defined(__AVX512F__)
inline Lanes weight_load(const BFloat16* p) {
  // The maskz forms, for the reason given at lanes_fold16.
  const __m256i halves = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m512i words = _mm512_maskz_cvtepu16_epi32(0xFFFF, halves);
  return {_mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, words, 16))};
}
#elif defined(__AVX2__) && defined(__FMA__)
inline __m256 widen8(const BFloat16* p) {
  const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16));
}
inline Lanes weight_load(const BFloat16* p) { return {widen8(p), widen8(p + 8)}; }
#else
inline Lanes weight_load(const BFloat16* p) {
  Lanes a;
  for (int l = 0; l < 16; ++l) a.v[l] = to_fp32(p[l]);
  return a;
}
#endif
// The last partial chunk: widened into a zero-padded block, the same lanes as the fp32 tail load.
inline Lanes weight_load_tail(const BFloat16* p, int64_t count) {
  alignas(64) float block[16] = {};
  for (int64_t l = 0; l < count; ++l) block[l] = to_fp32(p[l]);
  return lanes_load(block);
}

// ---- the block kernel -----------------------------------------------------------------------------

// y[r][c] for r < R, c < C: x rows at x + r*in, W rows at w + c*in, y rows at y + r*ldy.
template <typename W, int R, int C>
void block_kernel(const float* x, const W* w, float* y, int64_t in, int64_t ldy) {
  Lanes acc[R][C];
#pragma GCC unroll 16
  for (int i = 0; i < R * C; ++i) acc[i / C][i % C] = lanes_zero();
  int64_t k = 0;
  for (; k + 16 <= in; k += 16) {
    Lanes xv[R];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) xv[r] = lanes_load(x + r * in + k);
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const Lanes wv = weight_load(w + c * in + k);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[r][c] = lanes_fma(xv[r], wv, acc[r][c]);
    }
  }
  if (k < in) {  // the last partial chunk, zero-padded: same lanes, same fma
    for (int c = 0; c < C; ++c) {
      const Lanes wv = weight_load_tail(w + c * in + k, in - k);
      for (int r = 0; r < R; ++r) acc[r][c] = lanes_fma(lanes_load_tail(x + r * in + k, in - k), wv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) y[r * ldy + c] = lanes_sum(acc[r][c]);
}

constexpr int kMaxBlock = 4;
template <typename W>
using BlockKernel = void (*)(const float*, const W*, float*, int64_t, int64_t);

template <typename W, int R>
constexpr BlockKernel<W> kernel_for_cols(int cols) {
  return cols == 1 ? block_kernel<W, R, 1> : cols == 2 ? block_kernel<W, R, 2> : cols == 3 ? block_kernel<W, R, 3>
                                                                                           : block_kernel<W, R, 4>;
}
template <typename W>
BlockKernel<W> kernel_for(int rows, int cols) {
  switch (rows) {
    case 1: return kernel_for_cols<W, 1>(cols);
    case 2: return kernel_for_cols<W, 2>(cols);
    case 3: return kernel_for_cols<W, 3>(cols);
    default: return kernel_for_cols<W, 4>(cols);
  }
}

// Rows of x per task (64 x in floats: 192 KiB at in = 768, resident in L2) and W rows per task (a
// strip reused across the panel; 32 rows give out / 32 tasks for the GEMV case, enough to balance).
constexpr int64_t kRowPanel = 64;
constexpr int64_t kColStrip = 32;

template <typename W>
void invariant_linear(const float* x, const W* weight, float* y, int64_t n, int64_t in, int64_t out) {
  if (n == 0 || out == 0) return;
  const int64_t panels = (n + kRowPanel - 1) / kRowPanel, strips = (out + kColStrip - 1) / kColStrip;
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t s = 0; s < strips; ++s) {
      const int64_t row_end = std::min(n, (p + 1) * kRowPanel), col_end = std::min(out, (s + 1) * kColStrip);
      for (int64_t j = s * kColStrip; j < col_end; j += kMaxBlock) {
        const int cols = static_cast<int>(std::min<int64_t>(kMaxBlock, col_end - j));
        for (int64_t i = p * kRowPanel; i < row_end; i += kMaxBlock) {
          const int rows = static_cast<int>(std::min<int64_t>(kMaxBlock, row_end - i));
          kernel_for<W>(rows, cols)(x + i * in, weight + j * in, y + i * out + j, in, out);
        }
      }
    }
}

}  // namespace

void linear_forward_invariant(const float* x, const float* weight, float* y, int64_t n, int64_t in, int64_t out) {
  invariant_linear(x, weight, y, n, in, out);
}

void linear_forward_invariant(const float* x, const BFloat16* weight, float* y, int64_t n, int64_t in, int64_t out) {
  invariant_linear(x, weight, y, n, in, out);
}

}  // namespace flywheel::ops
