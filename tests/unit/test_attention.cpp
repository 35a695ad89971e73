// Causal grouped-query attention (ops/attention.h): forward and backward against a naive
// full-softmax float64 reference, backward against central finite differences, float against
// double, determinism and causality; the same for query chunks at a global offset (context
// parallelism), plus chunked calls composing to the full one.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"

namespace flywheel {
namespace {

using ops::AttentionShape;

int64_t keys(const AttentionShape& s) { return s.seq_k == 0 ? s.seq : s.seq_k; }
int64_t q_size(const AttentionShape& s) { return s.batch * s.seq * s.n_heads * s.head_dim; }
int64_t kv_size(const AttentionShape& s) { return s.batch * keys(s) * s.n_kv_heads * s.head_dim; }
int64_t lse_size(const AttentionShape& s) { return s.batch * s.n_heads * s.seq; }

std::vector<double> random_vector(int64_t n, std::mt19937& rng, double amplitude = 1.0) {
  std::uniform_real_distribution<double> dist(-amplitude, amplitude);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

// Sets the OpenMP thread count for a scope, restoring the previous one on exit.
struct ScopedThreads {
  int saved = omp_get_max_threads();
  explicit ScopedThreads(int n) { omp_set_num_threads(n); }
  ~ScopedThreads() { omp_set_num_threads(saved); }
};

template <typename T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Random q, k, v and an upstream gradient; q and k span +-2 so that scores (scale * q.k) range
// over several units and the softmax is far from uniform.
struct Inputs {
  AttentionShape shape;
  std::vector<double> q, k, v, dout;
  Inputs(const AttentionShape& s, uint32_t seed) : shape(s) {
    std::mt19937 rng(seed);
    q = random_vector(q_size(s), rng, 2.0);
    k = random_vector(kv_size(s), rng, 2.0);
    v = random_vector(kv_size(s), rng);
    dout = random_vector(q_size(s), rng);
  }
};

template <typename T>
struct Outputs {
  std::vector<T> out, lse, dq, dk, dv;
};

// Outputs start as NaN, so every element the op fails to write shows up in the comparisons.
template <typename T>
Outputs<T> run_attention(const AttentionShape& s, const std::vector<T>& q, const std::vector<T>& k,
                         const std::vector<T>& v, const std::vector<T>& dout) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  Outputs<T> o{std::vector<T>(q_size(s), nan), std::vector<T>(lse_size(s), nan),
               std::vector<T>(q_size(s), nan), std::vector<T>(kv_size(s), nan),
               std::vector<T>(kv_size(s), nan)};
  ops::attention_forward<T>(s, q.data(), k.data(), v.data(), o.out.data(), o.lse.data());
  ops::attention_backward<T>(s, q.data(), k.data(), v.data(), o.out.data(), o.lse.data(), dout.data(),
                             o.dq.data(), o.dk.data(), o.dv.data());
  return o;
}

template <typename T>
Outputs<T> run_attention(const Inputs& in) {
  return run_attention<T>(in.shape, cast<T>(in.q), cast<T>(in.k), cast<T>(in.v), cast<T>(in.dout));
}

// Naive causal GQA in double with the full seq x seq_k probability matrix per (batch, head):
// P = softmax(scale Q K^T + mask), O = P V, lse = log sum exp; and the textbook backward
// dP = dO V^T, dS = P o (dP - rowsum(P o dP)), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO.
// Query i sits at global position q_offset + i and sees keys j <= q_offset + i.
Outputs<double> naive_attention(const Inputs& in) {
  const AttentionShape& s = in.shape;
  const int64_t T = s.seq, TK = keys(s), off = s.q_offset, D = s.head_dim, H = s.n_heads, KV = s.n_kv_heads,
                G = H / KV;
  const double scale = 1.0 / std::sqrt(double(D));
  Outputs<double> o{std::vector<double>(q_size(s)), std::vector<double>(lse_size(s)),
                    std::vector<double>(q_size(s), 0.0), std::vector<double>(kv_size(s), 0.0),
                    std::vector<double>(kv_size(s), 0.0)};
  auto qi = [&](int64_t b, int64_t t, int64_t h) { return ((b * T + t) * H + h) * D; };
  auto ki = [&](int64_t b, int64_t t, int64_t h) { return ((b * TK + t) * KV + h / G) * D; };
  auto dot = [&](const double* x, const double* y) {
    double sum = 0;
    for (int64_t d = 0; d < D; ++d) sum += x[d] * y[d];
    return sum;
  };
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> P(T * TK, 0.0), dS(T * TK, 0.0);
      for (int64_t i = 0; i < T; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j <= off + i; ++j) {
          P[i * TK + j] = scale * dot(&in.q[qi(b, i, h)], &in.k[ki(b, j, h)]);
          mx = std::max(mx, P[i * TK + j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= off + i; ++j) sum += std::exp(P[i * TK + j] - mx);
        for (int64_t j = 0; j <= off + i; ++j) P[i * TK + j] = std::exp(P[i * TK + j] - mx) / sum;
        o.lse[(b * H + h) * T + i] = mx + std::log(sum);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j <= off + i; ++j) acc += P[i * TK + j] * in.v[ki(b, j, h) + d];
          o.out[qi(b, i, h) + d] = acc;
        }
        double rowsum = 0;
        for (int64_t j = 0; j <= off + i; ++j) {
          const double dp = dot(&in.dout[qi(b, i, h)], &in.v[ki(b, j, h)]);
          dS[i * TK + j] = dp;
          rowsum += P[i * TK + j] * dp;
        }
        for (int64_t j = 0; j <= off + i; ++j) dS[i * TK + j] = P[i * TK + j] * (dS[i * TK + j] - rowsum);
      }
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j <= off + i; ++j)
          for (int64_t d = 0; d < D; ++d) {
            o.dq[qi(b, i, h) + d] += scale * dS[i * TK + j] * in.k[ki(b, j, h) + d];
            o.dk[ki(b, j, h) + d] += scale * dS[i * TK + j] * in.q[qi(b, i, h) + d];
            o.dv[ki(b, j, h) + d] += P[i * TK + j] * in.dout[qi(b, i, h) + d];
          }
    }
  }
  return o;
}

// max_i |a_i - b_i| / max_i |b_i|: error relative to the tensor's scale, so that elements that
// happen to be near zero do not demand an impossible per-element relative accuracy. Infinite when
// a holds a NaN (an element the op never wrote; std::max would silently skip it).
template <typename T>
double relative_error(const std::vector<T>& a, const std::vector<double>& b) {
  EXPECT_EQ(a.size(), b.size());
  double err = 0, ref = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    if (!std::isfinite(double(a[i]))) return std::numeric_limits<double>::infinity();
    err = std::max(err, std::abs(double(a[i]) - b[i]));
    ref = std::max(ref, std::abs(b[i]));
  }
  return err / ref;
}

// Shapes: batch 2; seq below, at, just above and well above the 64-row tile (5, 64, 67, 130);
// GQA groups of 1, 2 and 4; head_dim 8 and 16 (ragged register blocks) and 64 (full blocks).
std::vector<AttentionShape> reference_shapes() {
  return {{2, 5, 4, 2, 8}, {2, 67, 4, 1, 16}, {2, 130, 4, 2, 16}, {2, 64, 4, 4, 8}, {1, 130, 4, 2, 64}};
}

TEST(AttentionForward, MatchesNaiveReference) {
  uint32_t seed = 1;
  for (const AttentionShape& s : reference_shapes()) {
    SCOPED_TRACE(::testing::Message() << "seq=" << s.seq << " heads=" << s.n_heads << "/" << s.n_kv_heads
                                      << " dim=" << s.head_dim);
    const Inputs in(s, seed++);
    const Outputs<double> ref = naive_attention(in);
    const Outputs<double> got = run_attention<double>(in);
    EXPECT_LT(relative_error(got.out, ref.out), 1e-12);
    EXPECT_LT(relative_error(got.lse, ref.lse), 1e-12);
  }
}

TEST(AttentionBackward, MatchesNaiveReference) {
  uint32_t seed = 100;
  for (const AttentionShape& s : reference_shapes()) {
    SCOPED_TRACE(::testing::Message() << "seq=" << s.seq << " heads=" << s.n_heads << "/" << s.n_kv_heads
                                      << " dim=" << s.head_dim);
    const Inputs in(s, seed++);
    const Outputs<double> ref = naive_attention(in);
    const Outputs<double> got = run_attention<double>(in);
    EXPECT_LT(relative_error(got.dq, ref.dq), 1e-11);
    EXPECT_LT(relative_error(got.dk, ref.dk), 1e-11);
    EXPECT_LT(relative_error(got.dv, ref.dv), 1e-11);
  }
}

// loss = sum(out o R), so dL/dout = R. Central differences (L(x+h) - L(x-h)) / 2h with h = 1e-6
// have truncation error h^2/6 |L'''| ~ 1e-12 and rounding error ~ eps |L| / h ~ 1e-16 * 10 / 1e-6
// = 1e-9 (L sums a few hundred O(1) terms), so 1e-6 relative to the gradient's scale leaves a
// wide margin while still catching any wrong term (those are O(1) relative).
TEST(AttentionBackward, MatchesFiniteDifferences) {
  const AttentionShape s{1, 70, 2, 1, 4};  // 70 rows: one full 64-row tile and a ragged one
  // 2240 tiny forward calls: one thread avoids a fork/join each, which on a loaded machine (ctest
  // -j) cost milliseconds apiece. Values do not depend on the thread count (see Determinism).
  const ScopedThreads one_thread(1);
  Inputs in(s, 7);
  const Outputs<double> got = run_attention<double>(in);
  const std::vector<double>& R = in.dout;
  auto loss = [&]() {
    std::vector<double> out(q_size(s)), lse(lse_size(s));
    ops::attention_forward<double>(s, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
    double sum = 0;
    for (size_t i = 0; i < out.size(); ++i) sum += out[i] * R[i];
    return sum;
  };
  const double h = 1e-6;
  auto check = [&](std::vector<double>& x, const std::vector<double>& grad, const char* name) {
    std::vector<double> fd(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double saved = x[i];
      x[i] = saved + h;
      const double plus = loss();
      x[i] = saved - h;
      const double minus = loss();
      x[i] = saved;
      fd[i] = (plus - minus) / (2 * h);
    }
    EXPECT_LT(relative_error(grad, fd), 1e-6) << name;
  };
  check(in.q, got.dq, "dq");
  check(in.k, got.dk, "dk");
  check(in.v, got.dv, "dv");
}

// float runs the same algorithm with float accumulation and the polynomial exp (~1 ulp); errors
// are a few ulp of fp32 amplified by sums of up to seq terms, so 1e-5 of each tensor's scale.
TEST(AttentionFloat, AgreesWithDouble) {
  const AttentionShape s{2, 200, 4, 2, 64};
  const Inputs in(s, 11);
  const Outputs<double> ref = run_attention<double>(in);
  const Outputs<float> got = run_attention<float>(in);
  EXPECT_LT(relative_error(got.out, ref.out), 1e-5);
  EXPECT_LT(relative_error(got.lse, ref.lse), 1e-5);
  EXPECT_LT(relative_error(got.dq, ref.dq), 1e-5);
  EXPECT_LT(relative_error(got.dk, ref.dk), 1e-5);
  EXPECT_LT(relative_error(got.dv, ref.dv), 1e-5);
  // The softmax normalisation hides a smooth error in the float exp from out and the gradients
  // (a 1e-3 error in a polynomial coefficient passes the checks above), but lse = m + log sum exp
  // carries the exp's relative error as an absolute one. Correct code measures 1e-6 here (half
  // an ulp of lse ~ 7 plus fp32 rounding of the scores); that mutation gives 2e-5.
  double lse_err = 0;
  for (size_t i = 0; i < ref.lse.size(); ++i) lse_err = std::max(lse_err, std::abs(got.lse[i] - ref.lse[i]));
  EXPECT_LT(lse_err, 3e-6);
}

template <typename T>
bool bit_identical(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <typename T>
void expect_bit_identical(const Outputs<T>& a, const Outputs<T>& b) {
  EXPECT_TRUE(bit_identical(a.out, b.out));
  EXPECT_TRUE(bit_identical(a.lse, b.lse));
  EXPECT_TRUE(bit_identical(a.dq, b.dq));
  EXPECT_TRUE(bit_identical(a.dk, b.dk));
  EXPECT_TRUE(bit_identical(a.dv, b.dv));
}

// Every output element has one owner that computes it in a fixed order, so repeated runs match
// bit for bit; no value depends on which thread ran it, so one thread matches many too.
TEST(AttentionDeterminism, RepeatedRunsAreBitIdentical) {
  const AttentionShape s{2, 300, 4, 1, 64};
  const Inputs in(s, 13);
  const Outputs<float> first = run_attention<float>(in);
  const Outputs<float> second = run_attention<float>(in);
  expect_bit_identical(first, second);

  const Outputs<float> serial = [&] {
    const ScopedThreads one_thread(1);
    return run_attention<float>(in);
  }();
  expect_bit_identical(first, serial);
}

// Changing keys and values after position t leaves out[0..t] untouched (bit for bit: masked
// probabilities are exact zeros) and does change later positions.
template <typename T>
void check_causality() {
  const AttentionShape s{2, 100, 4, 2, 16};
  const int64_t t = 40, row = s.n_heads * s.head_dim, kv_row = s.n_kv_heads * s.head_dim;
  Inputs in(s, 17);
  std::vector<T> out(q_size(s)), changed(q_size(s)), lse(lse_size(s));
  ops::attention_forward<T>(s, cast<T>(in.q).data(), cast<T>(in.k).data(), cast<T>(in.v).data(), out.data(),
                            lse.data());
  std::mt19937 rng(19);
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t i = (b * s.seq + t + 1) * kv_row; i < (b + 1) * s.seq * kv_row; ++i) {
      in.k[i] = std::uniform_real_distribution<double>(-2, 2)(rng);
      in.v[i] = std::uniform_real_distribution<double>(-1, 1)(rng);
    }
  ops::attention_forward<T>(s, cast<T>(in.q).data(), cast<T>(in.k).data(), cast<T>(in.v).data(),
                            changed.data(), lse.data());
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t begin = b * s.seq * row, split = (b * s.seq + t + 1) * row, end = (b + 1) * s.seq * row;
    EXPECT_EQ(0, std::memcmp(&out[begin], &changed[begin], (split - begin) * sizeof(T))) << "batch " << b;
    EXPECT_NE(0, std::memcmp(&out[split], &changed[split], (end - split) * sizeof(T))) << "batch " << b;
  }
}

TEST(AttentionCausality, LaterKeysDoNotAffectEarlierOutputs) {
  check_causality<double>();
  check_causality<float>();
}

TEST(AttentionShapeCheck, RejectsInvalidShapes) {
  std::vector<double> buf(1024);
  double* p = buf.data();
  EXPECT_THROW(ops::attention_forward<double>({1, 4, 3, 2, 4}, p, p, p, p, p), Error);  // 3 % 2 != 0
  EXPECT_THROW(ops::attention_forward<double>({1, 0, 2, 1, 4}, p, p, p, p, p), Error);
  EXPECT_THROW(ops::attention_backward<double>({1, 4, 2, 1, 0}, p, p, p, p, p, p, p, p, p), Error);
}

// ---- context parallelism: queries at a global offset, keys from position 0 ----------------------

std::string describe(const AttentionShape& s) {
  return std::to_string(s.batch) + "x" + std::to_string(s.seq) + " heads=" + std::to_string(s.n_heads) + "/" +
         std::to_string(s.n_kv_heads) + " dim=" + std::to_string(s.head_dim) +
         " seq_k=" + std::to_string(keys(s)) + " q_offset=" + std::to_string(s.q_offset);
}

// {batch, seq, heads, kv heads, dim, seq_k, q_offset}. Offsets not a multiple of the 64-row tile,
// so query tiles straddle two partially masked key tiles (37, 30, 130, 1) and one aligned (64);
// offset 1 ends query tiles at positions 64 and 128, where only the last row sees one key of the
// next key tile; seq_k past the last query (150 > 87, 140 > 131: keys nobody sees, a whole key
// tile in the first); GQA groups 2, 1, 4; head_dim 8, 16 (ragged register blocks) and 64 (full).
std::vector<AttentionShape> offset_shapes() {
  return {{2, 50, 4, 2, 16, 150, 37},
          {2, 64, 4, 4, 8, 128, 64},
          {2, 100, 4, 1, 16, 130, 30},
          {1, 70, 4, 2, 64, 200, 130},
          {2, 130, 4, 2, 8, 140, 1}};
}

TEST(AttentionOffsetForward, MatchesNaiveReference) {
  uint32_t seed = 200;
  for (const AttentionShape& s : offset_shapes()) {
    SCOPED_TRACE(describe(s));
    const Inputs in(s, seed++);
    const Outputs<double> ref = naive_attention(in);
    const Outputs<double> got = run_attention<double>(in);
    EXPECT_LT(relative_error(got.out, ref.out), 1e-12);
    EXPECT_LT(relative_error(got.lse, ref.lse), 1e-12);
  }
}

TEST(AttentionOffsetBackward, MatchesNaiveReference) {
  uint32_t seed = 300;
  for (const AttentionShape& s : offset_shapes()) {
    SCOPED_TRACE(describe(s));
    const Inputs in(s, seed++);
    const Outputs<double> ref = naive_attention(in);
    const Outputs<double> got = run_attention<double>(in);
    EXPECT_LT(relative_error(got.dq, ref.dq), 1e-11);
    EXPECT_LT(relative_error(got.dk, ref.dk), 1e-11);
    EXPECT_LT(relative_error(got.dv, ref.dv), 1e-11);
  }
}

// Keys after the last query's position get dk = dv = exactly 0, overwriting whatever was there
// (run_attention fills the buffers with NaN), and so do whole key tiles that no query reaches.
TEST(AttentionOffsetBackward, InvisibleKeysGetZeroGradient) {
  for (const AttentionShape& s :
       {AttentionShape{2, 50, 4, 2, 16, 150, 37}, AttentionShape{1, 10, 2, 1, 8, 300, 3}}) {
    SCOPED_TRACE(describe(s));
    const Inputs in(s, 21);
    const int64_t row = s.n_kv_heads * s.head_dim, visible = s.q_offset + s.seq;
    const Outputs<double> o = run_attention<double>(in);
    const Outputs<float> f = run_attention<float>(s, cast<float>(in.q), cast<float>(in.k), cast<float>(in.v),
                                                  cast<float>(in.dout));
    for (int64_t b = 0; b < s.batch; ++b)
      for (int64_t t = 0; t < keys(s); ++t)
        for (int64_t e = 0; e < row; ++e) {
          const int64_t i = (b * keys(s) + t) * row + e;
          if (t >= visible) {
            ASSERT_EQ(o.dk[i], 0.0) << "b=" << b << " key=" << t;
            ASSERT_EQ(o.dv[i], 0.0) << "b=" << b << " key=" << t;
            ASSERT_EQ(f.dk[i], 0.0f) << "b=" << b << " key=" << t;
            ASSERT_EQ(f.dv[i], 0.0f) << "b=" << b << " key=" << t;
          } else {
            ASSERT_NE(o.dv[i], 0.0) << "b=" << b << " key=" << t;  // visible keys do get gradient
          }
        }
  }
}

// Rows [t0, t1) of a tensor laid out [outer, len, width] (q / out: outer = batch, width = heads x
// dim; lse: outer = batch x heads, width = 1).
std::vector<double> slice_rows(const std::vector<double>& x, int64_t outer, int64_t len, int64_t width,
                               int64_t t0, int64_t t1) {
  std::vector<double> y;
  y.reserve(outer * (t1 - t0) * width);
  for (int64_t o = 0; o < outer; ++o)
    y.insert(y.end(), x.begin() + (o * len + t0) * width, x.begin() + (o * len + t1) * width);
  return y;
}

// Splitting the queries of a self-attention call into chunks [0, a) and [a, T), each run with
// q_offset = chunk start against keys [0, chunk end), reproduces the full call: out, lse and dq
// row for row, and dk, dv once the chunks' contributions are summed. This is what a
// context-parallel step computes, with the sum being the reduce-scatter of dk/dv.
TEST(AttentionOffsetComposition, ChunksReproduceFullCall) {
  struct Case {
    AttentionShape full;
    int64_t split;
  };
  for (const Case& c : {Case{{2, 150, 4, 2, 16}, 37}, Case{{2, 128, 4, 2, 8}, 64},
                        Case{{2, 130, 4, 1, 64}, 100}, Case{{1, 200, 4, 4, 16}, 1}}) {
    const AttentionShape& f = c.full;
    const int64_t T = f.seq, a = c.split, B = f.batch, qw = f.n_heads * f.head_dim,
                  kw = f.n_kv_heads * f.head_dim;
    SCOPED_TRACE(describe(f) + " split=" + std::to_string(a));
    const Inputs in(f, 400 + uint32_t(a));
    const Outputs<double> full = run_attention<double>(in);

    Outputs<double> chunk[2];
    for (int part = 0; part < 2; ++part) {
      const int64_t t0 = part == 0 ? 0 : a, t1 = part == 0 ? a : T;
      const AttentionShape s{B, t1 - t0, f.n_heads, f.n_kv_heads, f.head_dim, t1, t0};
      chunk[part] =
          run_attention<double>(s, slice_rows(in.q, B, T, qw, t0, t1), slice_rows(in.k, B, T, kw, 0, t1),
                                slice_rows(in.v, B, T, kw, 0, t1), slice_rows(in.dout, B, T, qw, t0, t1));
      EXPECT_LT(relative_error(chunk[part].out, slice_rows(full.out, B, T, qw, t0, t1)), 1e-12)
          << "part " << part;
      EXPECT_LT(relative_error(chunk[part].lse, slice_rows(full.lse, B * f.n_heads, T, 1, t0, t1)), 1e-12)
          << "part " << part;
      EXPECT_LT(relative_error(chunk[part].dq, slice_rows(full.dq, B, T, qw, t0, t1)), 1e-12)
          << "part " << part;
    }
    // Chunk 0 holds keys [0, a); chunk 1 all T.
    std::vector<double> dk = chunk[1].dk, dv = chunk[1].dv;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < a * kw; ++i) {
        dk[b * T * kw + i] += chunk[0].dk[b * a * kw + i];
        dv[b * T * kw + i] += chunk[0].dv[b * a * kw + i];
      }
    EXPECT_LT(relative_error(dk, full.dk), 1e-12);
    EXPECT_LT(relative_error(dv, full.dv), 1e-12);
  }
}

// As AttentionBackward.MatchesFiniteDifferences, on a chunk of 30 queries at positions 45..74
// against 100 keys: both key tiles it sees are partially masked, keys 75..99 are seen by nobody.
TEST(AttentionOffsetBackward, MatchesFiniteDifferences) {
  const AttentionShape s{1, 30, 2, 1, 4, 100, 45};
  const ScopedThreads one_thread(1);
  Inputs in(s, 23);
  const Outputs<double> got = run_attention<double>(in);
  const std::vector<double>& R = in.dout;
  auto loss = [&]() {
    std::vector<double> out(q_size(s)), lse(lse_size(s));
    ops::attention_forward<double>(s, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
    double sum = 0;
    for (size_t i = 0; i < out.size(); ++i) sum += out[i] * R[i];
    return sum;
  };
  const double h = 1e-6;
  auto check = [&](std::vector<double>& x, const std::vector<double>& grad, const char* name) {
    std::vector<double> fd(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const double saved = x[i];
      x[i] = saved + h;
      const double plus = loss();
      x[i] = saved - h;
      const double minus = loss();
      x[i] = saved;
      fd[i] = (plus - minus) / (2 * h);
    }
    EXPECT_LT(relative_error(grad, fd), 1e-6) << name;
  };
  check(in.q, got.dq, "dq");
  check(in.k, got.dk, "dk");
  check(in.v, got.dv, "dv");
}

TEST(AttentionOffsetFloat, AgreesWithDouble) {
  const AttentionShape s{2, 100, 4, 2, 64, 250, 150};
  const Inputs in(s, 29);
  const Outputs<double> ref = run_attention<double>(in);
  const Outputs<float> got = run_attention<float>(in);
  EXPECT_LT(relative_error(got.out, ref.out), 1e-5);
  EXPECT_LT(relative_error(got.lse, ref.lse), 1e-5);
  EXPECT_LT(relative_error(got.dq, ref.dq), 1e-5);
  EXPECT_LT(relative_error(got.dk, ref.dk), 1e-5);
  EXPECT_LT(relative_error(got.dv, ref.dv), 1e-5);
}

TEST(AttentionOffsetDeterminism, BitIdenticalAcrossRunsAndThreadCounts) {
  const AttentionShape s{2, 150, 4, 2, 64, 330, 157};
  const Inputs in(s, 31);
  const Outputs<float> first = run_attention<float>(in);
  expect_bit_identical(first, run_attention<float>(in));
  for (int threads : {1, 3}) {
    SCOPED_TRACE(threads);
    const ScopedThreads scoped(threads);
    expect_bit_identical(first, run_attention<float>(in));
  }
}

TEST(AttentionOffsetShapeCheck, RejectsBadOffsets) {
  std::vector<double> q(1024), kv(1024), out(1024), lse(256), g(1024);
  auto forward = [&](const AttentionShape& s) {
    ops::attention_forward<double>(s, q.data(), kv.data(), kv.data(), out.data(), lse.data());
  };
  auto backward = [&](const AttentionShape& s) {
    ops::attention_backward<double>(s, q.data(), kv.data(), kv.data(), out.data(), lse.data(), q.data(),
                                    g.data(), g.data(), g.data());
  };
  EXPECT_THROW(forward({1, 50, 2, 1, 4, 80, 31}), Error);  // 31 + 50 > 80
  EXPECT_THROW(backward({1, 50, 2, 1, 4, 80, 31}), Error);
  EXPECT_THROW(forward({1, 4, 2, 1, 4, 0, 1}), Error);   // seq_k = 0 means seq = 4 < 1 + 4
  EXPECT_THROW(forward({1, 4, 2, 1, 4, 8, -1}), Error);  // negative offset
  EXPECT_THROW(forward({1, 4, 2, 1, 4, -8, 0}), Error);  // negative seq_k
  EXPECT_THROW(forward({1, 4, 2, 1, 4, 3, 0}), Error);   // fewer keys than queries
  EXPECT_NO_THROW(forward({1, 50, 2, 1, 4, 80, 30}));    // 30 + 50 = 80: the largest valid offset
  EXPECT_NO_THROW(forward({1, 50, 2, 1, 4, 80, 0}));     // extra keys past the queries are allowed
  try {
    forward({1, 50, 2, 1, 4, 80, 31});
  } catch (const Error& e) {
    const std::string what = e.what();
    for (const char* number : {"q_offset=31", "seq=50", "seq_k=80", "81"})
      EXPECT_NE(what.find(number), std::string::npos) << number << " missing from: " << what;
  }
}

}  // namespace
}  // namespace flywheel
