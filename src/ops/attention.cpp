// Causal grouped-query attention on the CPU, FlashAttention-2 style (see attention.h for layouts).
//
// Notation for one (batch, head): S = scale * Q K^T, P = softmax_row(S) with the causal mask
// (query i, at global position q_offset + i, sees keys j <= q_offset + i), O = P V,
// lse_i = log sum_j exp(S_ij).
//
// Forward: for each query tile, walk the key tiles left to right with the online softmax
//   m_i' = max(m_i, max_j S_ij),  alpha_i = exp(m_i - m_i'),
//   l_i' = alpha_i l_i + sum_j exp(S_ij - m_i'),  O_i' = alpha_i O_i + sum_j exp(S_ij - m_i') V_j,
// and finish with O_i / l_i and lse_i = m_i + log l_i.
//
// Backward (dO given): D_i = sum_d dO_id O_id = sum_j P_ij dP_ij, then per tile
//   P = exp(S - lse),  dV += P^T dO,  dP = dO V^T,  dS = P o (dP - D),
//   dK += scale dS^T Q,  dQ += scale dS K.
// dK/dV and dQ are computed in two separate passes so that every output tile has one owner
// (no atomics, no cross-thread reductions); each pass recomputes P, which costs one extra pair of
// tile products compared to an atomic dQ but makes the result bit-identical run to run and, since
// no value depends on which thread computed it, for any thread count.
//
// Precision: everything accumulates in T. For float the sums run over at most seq keys of
// non-negative probabilities (l) or over 64-term tile products added tile by tile, so rounding
// grows like sqrt(seq) * 2^-24 (~4e-6 relative at seq 4096; measured 7e-7 at seq 200), far below
// the noise of an fp32 training step; fp64 accumulation would halve the vector width for nothing.
// The double instantiation is the oracle for tests.
#include "ops/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace flywheel::ops {
namespace {

// Query and key tile edge. 64 x 64 score tiles (16 KiB in fp32) plus the d x 64 transposed
// Q/dO copies and the 64 x d accumulators stay in L2 (~130 KiB per thread at head_dim 128) while
// giving each tile product 64-long inner loops. Smaller tiles pay more per-tile overhead (copies,
// softmax bookkeeping), larger ones spill out of L2 and leave fewer work items to balance; at
// seq 512, head_dim 64 a full step measured 28.2 / 27.0 / 31.5 ms (one core) for 32 / 64 / 128.
// Query tiles start at local row multiples of kTile (global q_offset + qt * kTile), key tiles at
// key multiples of kTile. With q_offset = 0 the last key tile a query tile visits is the square
// diagonal one; with any other offset a query tile may straddle two partially masked key tiles,
// and some of its rows may see no key of the last one (the online softmax allows that: key 0 is
// visible to every query, so every row's running max is finite after the first tile).
constexpr int64_t kTile = 64;

// Register block of the tile GEMM: 8 rows x 32 columns of C stay in registers while K streams
// (16 zmm for fp32 with AVX-512). Of the blocks tried with GCC 12 this was fastest both with
// AVX-512 (~200 GFLOP/s per core) and AVX2-only (~70, where it spills a little); 16-column blocks
// were ~10x slower (GCC keeps those accumulators in memory).
constexpr int64_t kMR = 8;
constexpr int64_t kNR = 32;

// ---- exp ------------------------------------------------------------------------------------------

// exp(x) for x <= ~0 that GCC can vectorise (std::exp is a libm call per element). Cody-Waite
// reduction x = n ln2 + r with |r| <= ~ln2/2, the Cephes degree-6 polynomial for e^r (about 1 ulp),
// then 2^n assembled in the exponent bits. x is clamped to [-87, 88] so 2^n stays a normal float:
// e^-87 ~ 1.6e-38 stands in for anything smaller, an absolute error irrelevant next to the
// row's largest term, which is 1.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // n = round(x / ln2) by the 1.5 * 2^23 shifter: adding it pushes the fraction bits out of the
  // mantissa. (std::floor would do, but GCC 12 then refuses to vectorise the calling loop.)
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  return y * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}
// The float64 path is the test oracle: exact libm exp, speed secondary.
inline double exp_approx(double x) { return std::exp(x); }

// ---- tile GEMM ------------------------------------------------------------------------------------

// op(A)[i][k] = kTransA ? A[k * lda + i] : A[i * lda + k]. Transposed A lets a product read a
// score tile stored key-major (S^T) as if it were query-major, without a transpose copy.
template <typename T, bool kTransA>
inline T a_at(const T* A, int64_t lda, int64_t i, int64_t k) {
  return kTransA ? A[k * lda + i] : A[i * lda + k];
}

// C[kMR x kNR] (+)= op(A)[kMR x K] B[K x kNR]: accumulators in registers, one row of B and kMR
// broadcasts of A per k (k-outer order keeps every C element a sequential sum over k).
template <typename T, bool kTransA>
void micro_kernel(int64_t K, const T* __restrict A, int64_t lda, const T* __restrict B, int64_t ldb,
                  T* __restrict C, int64_t ldc, bool accumulate) {
  T acc[kMR][kNR];
  for (int64_t r = 0; r < kMR; ++r)
    for (int64_t j = 0; j < kNR; ++j) acc[r][j] = accumulate ? C[r * ldc + j] : T(0);
  for (int64_t k = 0; k < K; ++k) {
    const T* b = B + k * ldb;
    for (int64_t r = 0; r < kMR; ++r) {
      const T a = a_at<T, kTransA>(A, lda, r, k);
      for (int64_t j = 0; j < kNR; ++j) acc[r][j] += a * b[j];
    }
  }
  for (int64_t r = 0; r < kMR; ++r)
    for (int64_t j = 0; j < kNR; ++j) C[r * ldc + j] = acc[r][j];
}

// The ragged edge (mr < kMR rows or nr < kNR columns), row by row; same k order per element.
template <typename T, bool kTransA>
void edge_kernel(int64_t mr, int64_t nr, int64_t K, const T* __restrict A, int64_t lda,
                 const T* __restrict B, int64_t ldb, T* __restrict C, int64_t ldc, bool accumulate) {
  for (int64_t r = 0; r < mr; ++r) {
    T acc[kNR];
    for (int64_t j = 0; j < nr; ++j) acc[j] = accumulate ? C[r * ldc + j] : T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T a = a_at<T, kTransA>(A, lda, r, k);
      const T* b = B + k * ldb;
      for (int64_t j = 0; j < nr; ++j) acc[j] += a * b[j];
    }
    for (int64_t j = 0; j < nr; ++j) C[r * ldc + j] = acc[j];
  }
}

// Which index of a partially masked tile product is which, letting tile_gemm skip work that the
// causal mask zeroes. In such a tile local query r sees local key c iff c <= r + shift, where
// shift = (global position of the tile's first query) - (its first key); shift = 0 is the square
// diagonal tile of self-attention.
//   kKeyRows / kQueryRows: C is a score tile with keys / queries along M; register blocks that
//     are entirely masked are written as 0 (or left alone when accumulating) instead of computed.
//   kKeyInner / kQueryInner: K runs over keys / queries of a masked probability tile op(A); the
//     sum skips the k where op(A)[i][k] is 0 for every row of the block. Those terms add exact
//     zeros, so the result is bit-identical to the full sum.
// On a 64-wide diagonal tile this skips 25% of a score product and 44% of an inner-masked one.
enum class Causal { kNone, kKeyRows, kQueryRows, kKeyInner, kQueryInner };

// k range [first, second) that can contribute to rows i..i+mr of C; {0, 0} when none can.
inline std::pair<int64_t, int64_t> inner_range(Causal causal, int64_t shift, int64_t i, int64_t mr,
                                                int64_t K) {
  int64_t k0 = 0, k1 = K;
  if (causal == Causal::kKeyInner) k1 = std::min(K, i + mr + shift);        // keys c <= query r + shift
  if (causal == Causal::kQueryInner) k0 = std::max<int64_t>(0, i - shift);  // queries r >= key c - shift
  if (k0 >= k1) return {0, 0};
  return {k0, k1};
}

// Whether C's block rows i..i+mr, columns j..j+nr are all masked (min key - max query > shift).
inline bool block_masked(Causal causal, int64_t shift, int64_t i, int64_t mr, int64_t j, int64_t nr) {
  if (causal == Causal::kKeyRows) return i - (j + nr - 1) > shift;
  if (causal == Causal::kQueryRows) return j - (i + mr - 1) > shift;
  return false;
}

// C[M x N] (+)= op(A)[M x K] B[K x N], all row-major with leading dimensions. Tiles are at most
// 64 x 128, so OpenBLAS's per-call packing would cost about as much as the product; this
// register-blocked loop runs at ~200 GFLOP/s per core on the AVX-512 build machine (OpenBLAS
// 0.3.21 sgemm: ~100).
template <typename T, bool kTransA>
void tile_gemm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
               int64_t ldc, bool accumulate, Causal causal = Causal::kNone, int64_t shift = 0) {
  for (int64_t i = 0; i < M; i += kMR) {
    const int64_t mr = std::min(kMR, M - i);
    const auto [k0, k1] = inner_range(causal, shift, i, mr, K);
    const T* a = kTransA ? A + k0 * lda + i : A + i * lda + k0;
    const T* b = B + k0 * ldb;
    for (int64_t j = 0; j < N; j += kNR) {
      const int64_t nr = std::min(kNR, N - j);
      // A masked block is a product over an empty K: zeros, or C unchanged when accumulating.
      const bool masked = block_masked(causal, shift, i, mr, j, nr);
      if (masked && accumulate) continue;
      const int64_t depth = masked ? 0 : k1 - k0;
      T* c = C + i * ldc + j;
      if (mr == kMR && nr == kNR)
        micro_kernel<T, kTransA>(depth, a, lda, b + j, ldb, c, ldc, accumulate);
      else
        edge_kernel<T, kTransA>(mr, nr, depth, a, lda, b + j, ldb, c, ldc, accumulate);
    }
  }
}

// ---- geometry -------------------------------------------------------------------------------------

int64_t keys_of(const AttentionShape& s) { return s.seq_k == 0 ? s.seq : s.seq_k; }

void validate(const AttentionShape& s) {
  FW_CHECK(s.batch > 0 && s.seq > 0 && s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0,
           "attention: all sizes must be positive, got batch=", s.batch, " seq=", s.seq,
           " n_heads=", s.n_heads, " n_kv_heads=", s.n_kv_heads, " head_dim=", s.head_dim);
  FW_CHECK(s.n_heads % s.n_kv_heads == 0, "attention: n_heads=", s.n_heads,
           " must be a multiple of n_kv_heads=", s.n_kv_heads,
           " (each key/value head serves n_heads / n_kv_heads query heads)");
  FW_CHECK(s.seq_k >= 0, "attention: seq_k=", s.seq_k, " must be positive, or 0 for seq_k = seq");
  FW_CHECK(s.q_offset >= 0, "attention: q_offset=", s.q_offset, " must be >= 0 (it is the global position of",
           " the first query)");
  // Every query's causal prefix must be present: q_offset + seq <= seq_k, tested as q_offset <=
  // seq_k - seq so that nothing overflows (the message's sum is unsigned: both terms are >= 0).
  FW_CHECK(s.q_offset <= keys_of(s) - s.seq, "attention: queries at positions q_offset=", s.q_offset,
           " .. q_offset + seq - 1 (seq=", s.seq, ") need keys 0 .. q_offset + seq - 1, i.e. seq_k >= ",
           static_cast<uint64_t>(s.q_offset) + static_cast<uint64_t>(s.seq), ", but seq_k=", keys_of(s),
           s.seq_k == 0 ? " (seq_k = 0 means seq)" : "");
}

// Index arithmetic for the token-major layouts of attention.h. Query tiles are numbered over the
// seq local query rows, key tiles over the seq_k keys.
struct Geometry {
  int64_t batch, seq, seq_k, q_offset, heads, kv_heads, dim, group, q_tiles, k_tiles;
  explicit Geometry(const AttentionShape& s)
      : batch(s.batch), seq(s.seq), seq_k(keys_of(s)), q_offset(s.q_offset), heads(s.n_heads),
        kv_heads(s.n_kv_heads), dim(s.head_dim), group(s.n_heads / s.n_kv_heads),
        q_tiles((seq + kTile - 1) / kTile), k_tiles((seq_k + kTile - 1) / kTile) {}
  int64_t q_stride() const { return heads * dim; }  // between consecutive tokens of one head
  int64_t kv_stride() const { return kv_heads * dim; }
  int64_t q_off(int64_t b, int64_t t, int64_t h) const { return ((b * seq + t) * heads + h) * dim; }
  int64_t kv_off(int64_t b, int64_t t, int64_t kvh) const { return ((b * seq_k + t) * kv_heads + kvh) * dim; }
  int64_t row_off(int64_t b, int64_t h) const { return (b * heads + h) * seq; }  // lse / D rows
  int64_t q_tile_len(int64_t tile) const { return std::min(kTile, seq - tile * kTile); }
  int64_t k_tile_len(int64_t tile) const { return std::min(kTile, seq_k - tile * kTile); }
  // Global position of the first query of query tile qt.
  int64_t q_pos(int64_t qt) const { return q_offset + qt * kTile; }
  // Key tiles 0 .. last_key_tile(qt) hold the keys that query tile qt can see (its last row's).
  int64_t last_key_tile(int64_t qt) const { return (q_pos(qt) + q_tile_len(qt) - 1) / kTile; }
  // Query tiles first_query_tile(kt) .. q_tiles - 1 can see some key of key tile kt; q_tiles when
  // none can (the tile lies past the last query).
  int64_t first_query_tile(int64_t kt) const {
    // First local query that sees key kt * kTile, the tile's first.
    const int64_t first_row = std::max<int64_t>(0, kt * kTile - q_offset);
    return first_row >= seq ? q_tiles : first_row / kTile;
  }
  // Whether some key of key tile kt is masked for some query of query tile qt (the tile's last key
  // lies after its first query). Otherwise every key is visible to every query: no mask at all.
  bool partial(int64_t qt, int64_t kt) const { return kt * kTile + k_tile_len(kt) - 1 > q_pos(qt); }
};

// dst[k * ld + i] = src[i * stride + k] for i < rows, k < dim: a token-major head slice turned
// dim-major so it can be the B operand of a product over dim. Contiguous writes in the inner
// loop measured 1.4x faster than contiguous reads (strided stores are the costlier side).
template <typename T>
void copy_transposed(const T* src, int64_t stride, int64_t rows, int64_t dim, T* dst, int64_t ld) {
  for (int64_t k = 0; k < dim; ++k)
    for (int64_t i = 0; i < rows; ++i) dst[k * ld + i] = src[i * stride + k];
}

// First query row r (0-based in a tile starting at r0) that may see key c0 + c: r0 + r >= c0 + c.
inline int64_t first_visible_row(int64_t r0, int64_t c0, int64_t c, int64_t nr) {
  return std::clamp<int64_t>(c0 + c - r0, 0, nr);
}

// ---- forward --------------------------------------------------------------------------------------

template <typename T>
struct ForwardScratch {
  std::vector<T> qt, st, o, m, l, alpha;
  explicit ForwardScratch(int64_t dim)
      : qt(dim * kTile), st(kTile * kTile), o(kTile * dim), m(kTile), l(kTile), alpha(kTile) {}
};

// One key tile's online-softmax step on the key-major score tile st[c][r] = q_r . k_c (unscaled);
// r0 and c0 are the global positions of the tile's first query and key.
// Working key-major turns every per-query reduction (max, sum) into element-wise vector ops over r.
// Leaves st = exp(scale st - m') (0 where masked) and m, l, alpha updated.
template <typename T>
void online_softmax_step(T* st, int64_t nc, int64_t nr, int64_t r0, int64_t c0, T scale, T* m, T* l,
                         T* alpha) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  T tile_max[kTile];
  std::fill(tile_max, tile_max + nr, kNegInf);
  for (int64_t c = 0; c < nc; ++c) {
    const T* row = st + c * kTile;
    const int64_t first = first_visible_row(r0, c0, c, nr);
    // Selects rather than a loop starting at `first`: branch-free full-width vector loops.
    for (int64_t r = 0; r < nr; ++r) tile_max[r] = r < first ? tile_max[r] : std::max(tile_max[r], row[r]);
  }
  for (int64_t r = 0; r < nr; ++r) {
    // A row that sees no key of this tile (possible when q_offset is not a multiple of kTile) has
    // tile_max = -inf, but its m is finite: key 0, in the first tile visited, is visible to every
    // row. So m_new = m, alpha = exp(0) = 1 exactly, and the row's state is unchanged.
    const T m_new = std::max(m[r], scale * tile_max[r]);
    alpha[r] = m[r] == kNegInf ? T(0) : exp_approx(m[r] - m_new);
    m[r] = m_new;
    l[r] *= alpha[r];
  }
  for (int64_t c = 0; c < nc; ++c) {
    T* row = st + c * kTile;
    const int64_t first = first_visible_row(r0, c0, c, nr);
    for (int64_t r = 0; r < nr; ++r) {
      row[r] = r < first ? T(0) : exp_approx(scale * row[r] - m[r]);
      l[r] += row[r];
    }
  }
}

// Output rows r0..r0+nr (local) of head h: walks the key tiles the rows can see, left to right,
// then normalises.
template <typename T>
void forward_query_tile(const Geometry& g, int64_t b, int64_t h, int64_t qt, T scale, const T* q, const T* k,
                        const T* v, T* out, T* lse, ForwardScratch<T>& s) {
  const int64_t r0 = qt * kTile, nr = g.q_tile_len(qt), pos = g.q_pos(qt), dim = g.dim, kvh = h / g.group;
  copy_transposed(q + g.q_off(b, r0, h), g.q_stride(), nr, dim, s.qt.data(), kTile);
  std::fill(s.m.begin(), s.m.end(), -std::numeric_limits<T>::infinity());
  std::fill(s.l.begin(), s.l.end(), T(0));
  std::fill(s.o.begin(), s.o.end(), T(0));
  const int64_t last = g.last_key_tile(qt);
  for (int64_t kt = 0; kt <= last; ++kt) {
    const int64_t c0 = kt * kTile, nc = g.k_tile_len(kt), shift = pos - c0;
    const bool partial = g.partial(qt, kt);
    // S^T[c][r] = k_c . q_r, then P^T in place, then O = alpha O + P V.
    tile_gemm<T, false>(nc, nr, dim, k + g.kv_off(b, c0, kvh), g.kv_stride(), s.qt.data(), kTile, s.st.data(),
                        kTile, false, partial ? Causal::kKeyRows : Causal::kNone, shift);
    online_softmax_step(s.st.data(), nc, nr, pos, c0, scale, s.m.data(), s.l.data(), s.alpha.data());
    for (int64_t r = 0; r < nr; ++r)
      for (int64_t d = 0; d < dim; ++d) s.o[r * dim + d] *= s.alpha[r];
    tile_gemm<T, true>(nr, dim, nc, s.st.data(), kTile, v + g.kv_off(b, c0, kvh), g.kv_stride(), s.o.data(), dim,
                       true, partial ? Causal::kKeyInner : Causal::kNone, shift);
  }
  for (int64_t r = 0; r < nr; ++r) {
    T* dst = out + g.q_off(b, r0 + r, h);
    const T inv_l = T(1) / s.l[r];  // l >= 1: the row maximum contributes exp(0)
    for (int64_t d = 0; d < dim; ++d) dst[d] = s.o[r * dim + d] * inv_l;
    lse[g.row_off(b, h) + r0 + r] = s.m[r] + std::log(s.l[r]);
  }
}

// ---- backward -------------------------------------------------------------------------------------

// D_i = sum_d dO_id O_id per query row (= sum_j P_ij dP_ij, the softmax-Jacobian correction).
template <typename T>
void row_dots(const Geometry& g, const T* out, const T* dout, T* drow) {
#pragma omp parallel for schedule(static)
  for (int64_t bh = 0; bh < g.batch * g.heads; ++bh) {
    const int64_t b = bh / g.heads, h = bh % g.heads;
    for (int64_t t = 0; t < g.seq; ++t) {
      const T* o = out + g.q_off(b, t, h);
      const T* d_o = dout + g.q_off(b, t, h);
      T sum = 0;
      for (int64_t d = 0; d < g.dim; ++d) sum += o[d] * d_o[d];
      drow[g.row_off(b, h) + t] = sum;
    }
  }
}

// Everything a backward pass reads, bundled to keep the helpers' signatures short.
template <typename T>
struct BackwardInputs {
  const T *q, *k, *v, *lse, *dout, *drow;
  T scale;
};

// dV and dK of one key tile (pass 1): owns rows c0..c0+nc of kv head kvh, loops over the query
// heads of the group and the query tiles that can see some key of the tile.
template <typename T>
struct KeyScratch {
  std::vector<T> kt, vt, p, dp, dk, dv;
  explicit KeyScratch(int64_t dim)
      : kt(dim * kTile), vt(dim * kTile), p(kTile * kTile), dp(kTile * kTile), dk(kTile * dim), dv(kTile * dim) {}
};

// Query-major tile: P[r][c] = exp(scale s - lse_r) where visible, else 0 (in place on s); r0 and
// c0 are global positions.
template <typename T>
void probs_query_major(T* s, int64_t nr, int64_t nc, int64_t r0, int64_t c0, T scale, const T* lse) {
  for (int64_t r = 0; r < nr; ++r) {
    T* row = s + r * kTile;
    const int64_t visible = std::clamp<int64_t>(r0 + r - c0 + 1, 0, nc);
    for (int64_t c = 0; c < nc; ++c) row[c] = c < visible ? exp_approx(scale * row[c] - lse[r]) : T(0);
  }
}

template <typename T>
void backward_key_tile(const Geometry& g, int64_t b, int64_t kvh, int64_t ktile, const BackwardInputs<T>& in,
                       T* dk, T* dv, KeyScratch<T>& s) {
  const int64_t c0 = ktile * kTile, nc = g.k_tile_len(ktile), dim = g.dim;
  std::fill(s.dk.begin(), s.dk.end(), T(0));
  std::fill(s.dv.begin(), s.dv.end(), T(0));
  const int64_t first = g.first_query_tile(ktile);  // q_tiles when no query sees the tile: dk = dv = 0
  if (first < g.q_tiles) {
    copy_transposed(in.k + g.kv_off(b, c0, kvh), g.kv_stride(), nc, dim, s.kt.data(), kTile);
    copy_transposed(in.v + g.kv_off(b, c0, kvh), g.kv_stride(), nc, dim, s.vt.data(), kTile);
  }
  for (int64_t h = kvh * g.group; h < (kvh + 1) * g.group; ++h) {
    for (int64_t qt = first; qt < g.q_tiles; ++qt) {
      const int64_t r0 = qt * kTile, nr = g.q_tile_len(qt), pos = g.q_pos(qt), shift = pos - c0;
      const T* q = in.q + g.q_off(b, r0, h);
      const T* dout = in.dout + g.q_off(b, r0, h);
      const T* drow = in.drow + g.row_off(b, h) + r0;
      const bool partial = g.partial(qt, ktile);
      const Causal rows = partial ? Causal::kQueryRows : Causal::kNone;
      const Causal inner = partial ? Causal::kQueryInner : Causal::kNone;
      tile_gemm<T, false>(nr, nc, dim, q, g.q_stride(), s.kt.data(), kTile, s.p.data(), kTile, false, rows,
                          shift);
      probs_query_major(s.p.data(), nr, nc, pos, c0, in.scale, in.lse + g.row_off(b, h) + r0);
      // dV += P^T dO
      tile_gemm<T, true>(nc, dim, nr, s.p.data(), kTile, dout, g.q_stride(), s.dv.data(), dim, true, inner,
                         shift);
      // dP = dO V^T, then dS = P o (dP - D) in place
      tile_gemm<T, false>(nr, nc, dim, dout, g.q_stride(), s.vt.data(), kTile, s.dp.data(), kTile, false, rows,
                          shift);
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t c = 0; c < nc; ++c)
          s.dp[r * kTile + c] = s.p[r * kTile + c] * (s.dp[r * kTile + c] - drow[r]);
      // dK += dS^T Q (scale applied once at the end)
      tile_gemm<T, true>(nc, dim, nr, s.dp.data(), kTile, q, g.q_stride(), s.dk.data(), dim, true, inner, shift);
    }
  }
  for (int64_t c = 0; c < nc; ++c) {
    T* dk_row = dk + g.kv_off(b, c0 + c, kvh);
    T* dv_row = dv + g.kv_off(b, c0 + c, kvh);
    for (int64_t d = 0; d < dim; ++d) {
      dk_row[d] = in.scale * s.dk[c * dim + d];
      dv_row[d] = s.dv[c * dim + d];
    }
  }
}

// dQ of one query tile (pass 2): owns rows r0..r0+nr (local) of head h, loops over the key tiles
// the rows can see.
template <typename T>
struct QueryScratch {
  std::vector<T> qt, dot, pt, dpt, dq;
  explicit QueryScratch(int64_t dim)
      : qt(dim * kTile), dot(dim * kTile), pt(kTile * kTile), dpt(kTile * kTile), dq(kTile * dim) {}
};

// Key-major tile: P^T[c][r] = exp(scale s - lse_r) where visible, else 0 (in place on st); r0 and
// c0 are global positions.
template <typename T>
void probs_key_major(T* st, int64_t nc, int64_t nr, int64_t r0, int64_t c0, T scale, const T* lse) {
  for (int64_t c = 0; c < nc; ++c) {
    T* row = st + c * kTile;
    const int64_t first = first_visible_row(r0, c0, c, nr);
    for (int64_t r = 0; r < nr; ++r) row[r] = r < first ? T(0) : exp_approx(scale * row[r] - lse[r]);
  }
}

template <typename T>
void backward_query_tile(const Geometry& g, int64_t b, int64_t h, int64_t qtile, const BackwardInputs<T>& in,
                         T* dq, QueryScratch<T>& s) {
  const int64_t r0 = qtile * kTile, nr = g.q_tile_len(qtile), pos = g.q_pos(qtile), dim = g.dim;
  const int64_t kvh = h / g.group;
  const T* lse = in.lse + g.row_off(b, h) + r0;
  const T* drow = in.drow + g.row_off(b, h) + r0;
  copy_transposed(in.q + g.q_off(b, r0, h), g.q_stride(), nr, dim, s.qt.data(), kTile);
  copy_transposed(in.dout + g.q_off(b, r0, h), g.q_stride(), nr, dim, s.dot.data(), kTile);
  std::fill(s.dq.begin(), s.dq.end(), T(0));
  const int64_t last = g.last_key_tile(qtile);
  for (int64_t kt = 0; kt <= last; ++kt) {
    const int64_t c0 = kt * kTile, nc = g.k_tile_len(kt), shift = pos - c0;
    const T* k = in.k + g.kv_off(b, c0, kvh);
    const bool partial = g.partial(qtile, kt);
    const Causal rows = partial ? Causal::kKeyRows : Causal::kNone;
    const Causal inner = partial ? Causal::kKeyInner : Causal::kNone;
    tile_gemm<T, false>(nc, nr, dim, k, g.kv_stride(), s.qt.data(), kTile, s.pt.data(), kTile, false, rows,
                        shift);
    probs_key_major(s.pt.data(), nc, nr, pos, c0, in.scale, lse);
    // dP^T = V dO^T, then dS^T = P^T o (dP^T - D) in place
    tile_gemm<T, false>(nc, nr, dim, in.v + g.kv_off(b, c0, kvh), g.kv_stride(), s.dot.data(), kTile,
                        s.dpt.data(), kTile, false, rows, shift);
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t r = 0; r < nr; ++r)
        s.dpt[c * kTile + r] = s.pt[c * kTile + r] * (s.dpt[c * kTile + r] - drow[r]);
    // dQ += dS K (scale applied once at the end)
    tile_gemm<T, true>(nr, dim, nc, s.dpt.data(), kTile, k, g.kv_stride(), s.dq.data(), dim, true, inner, shift);
  }
  for (int64_t r = 0; r < nr; ++r) {
    T* dst = dq + g.q_off(b, r0 + r, h);
    for (int64_t d = 0; d < dim; ++d) dst[d] = in.scale * s.dq[r * dim + d];
  }
}

}  // namespace

// Work items are (batch, head, query tile); a query tile's cost grows with its index (it visits
// last_key_tile(qt) + 1 key tiles), so items are numbered heaviest first and handed out
// dynamically. Each item is computed start to finish by one thread, so the schedule cannot change
// any value.
template <typename T>
void attention_forward(const AttentionShape& shape, const T* q, const T* k, const T* v, T* out, T* lse) {
  validate(shape);
  const Geometry g(shape);
  const T scale = T(1) / std::sqrt(T(shape.head_dim));
  const int64_t rows = g.batch * g.heads;
#pragma omp parallel
  {
    ForwardScratch<T> scratch(g.dim);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < g.q_tiles * rows; ++item) {
      const int64_t qt = g.q_tiles - 1 - item / rows, bh = item % rows;
      forward_query_tile(g, bh / g.heads, bh % g.heads, qt, scale, q, k, v, out, lse, scratch);
    }
  }
}

template <typename T>
void attention_backward(const AttentionShape& shape, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  validate(shape);
  const Geometry g(shape);
  std::vector<T> drow(g.batch * g.heads * g.seq);  // O(seq) per head: the only full-length buffer
  row_dots(g, out, dout, drow.data());
  const BackwardInputs<T> in{q, k, v, lse, dout, drow.data(), T(1) / std::sqrt(T(shape.head_dim))};

  // Pass 1: dK, dV per (batch, kv head, key tile) over all seq_k keys; key tile kt visits
  // q_tiles - first_query_tile(kt) query tiles, so items run lowest kt (heaviest) first.
  const int64_t kv_rows = g.batch * g.kv_heads;
#pragma omp parallel
  {
    KeyScratch<T> scratch(g.dim);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < g.k_tiles * kv_rows; ++item) {
      const int64_t kt = item / kv_rows, bkv = item % kv_rows;
      backward_key_tile(g, bkv / g.kv_heads, bkv % g.kv_heads, kt, in, dk, dv, scratch);
    }
  }

  // Pass 2: dQ per (batch, head, query tile), heaviest (last) query tile first.
  const int64_t rows = g.batch * g.heads;
#pragma omp parallel
  {
    QueryScratch<T> scratch(g.dim);
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < g.q_tiles * rows; ++item) {
      const int64_t qt = g.q_tiles - 1 - item / rows, bh = item % rows;
      backward_query_tile(g, bh / g.heads, bh % g.heads, qt, in, dq, scratch);
    }
  }
}

#define FW_INSTANTIATE(T)                                                                                 \
  template void attention_forward<T>(const AttentionShape&, const T*, const T*, const T*, T*, T*);        \
  template void attention_backward<T>(const AttentionShape&, const T*, const T*, const T*, const T*,      \
                                      const T*, const T*, T*, T*, T*);
FW_INSTANTIATE(float)
FW_INSTANTIATE(double)
#undef FW_INSTANTIATE

}  // namespace flywheel::ops
