// Causal grouped-query attention (ops/attention.h): forward and backward against a naive
// full-softmax float64 reference, backward against central finite differences, float against
// double, determinism and causality.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "ops/attention.h"

namespace flywheel {
namespace {

using ops::AttentionShape;

int64_t q_size(const AttentionShape& s) { return s.batch * s.seq * s.n_heads * s.head_dim; }
int64_t kv_size(const AttentionShape& s) { return s.batch * s.seq * s.n_kv_heads * s.head_dim; }
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

template <typename T>
Outputs<T> run_attention(const AttentionShape& s, const std::vector<T>& q, const std::vector<T>& k,
                         const std::vector<T>& v, const std::vector<T>& dout) {
  Outputs<T> o{std::vector<T>(q_size(s)), std::vector<T>(lse_size(s)), std::vector<T>(q_size(s)),
               std::vector<T>(kv_size(s)), std::vector<T>(kv_size(s))};
  ops::attention_forward<T>(s, q.data(), k.data(), v.data(), o.out.data(), o.lse.data());
  ops::attention_backward<T>(s, q.data(), k.data(), v.data(), o.out.data(), o.lse.data(), dout.data(),
                             o.dq.data(), o.dk.data(), o.dv.data());
  return o;
}

template <typename T>
Outputs<T> run_attention(const Inputs& in) {
  return run_attention<T>(in.shape, cast<T>(in.q), cast<T>(in.k), cast<T>(in.v), cast<T>(in.dout));
}

// Naive causal GQA in double with the full seq x seq probability matrix per (batch, head):
// P = softmax(scale Q K^T + mask), O = P V, lse = log sum exp; and the textbook backward
// dP = dO V^T, dS = P o (dP - rowsum(P o dP)), dQ = scale dS K, dK = scale dS^T Q, dV = P^T dO.
Outputs<double> naive_attention(const Inputs& in) {
  const AttentionShape& s = in.shape;
  const int64_t T = s.seq, D = s.head_dim, H = s.n_heads, KV = s.n_kv_heads, G = H / KV;
  const double scale = 1.0 / std::sqrt(double(D));
  Outputs<double> o{std::vector<double>(q_size(s)), std::vector<double>(lse_size(s)),
                    std::vector<double>(q_size(s), 0.0), std::vector<double>(kv_size(s), 0.0),
                    std::vector<double>(kv_size(s), 0.0)};
  auto qi = [&](int64_t b, int64_t t, int64_t h) { return ((b * T + t) * H + h) * D; };
  auto ki = [&](int64_t b, int64_t t, int64_t h) { return ((b * T + t) * KV + h / G) * D; };
  auto dot = [&](const double* x, const double* y) {
    double sum = 0;
    for (int64_t d = 0; d < D; ++d) sum += x[d] * y[d];
    return sum;
  };
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t h = 0; h < H; ++h) {
      std::vector<double> P(T * T, 0.0), dS(T * T, 0.0);
      for (int64_t i = 0; i < T; ++i) {
        double mx = -INFINITY;
        for (int64_t j = 0; j <= i; ++j) {
          P[i * T + j] = scale * dot(&in.q[qi(b, i, h)], &in.k[ki(b, j, h)]);
          mx = std::max(mx, P[i * T + j]);
        }
        double sum = 0;
        for (int64_t j = 0; j <= i; ++j) sum += std::exp(P[i * T + j] - mx);
        for (int64_t j = 0; j <= i; ++j) P[i * T + j] = std::exp(P[i * T + j] - mx) / sum;
        o.lse[(b * H + h) * T + i] = mx + std::log(sum);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j <= i; ++j) acc += P[i * T + j] * in.v[ki(b, j, h) + d];
          o.out[qi(b, i, h) + d] = acc;
        }
        double rowsum = 0;
        for (int64_t j = 0; j <= i; ++j) {
          const double dp = dot(&in.dout[qi(b, i, h)], &in.v[ki(b, j, h)]);
          dS[i * T + j] = dp;
          rowsum += P[i * T + j] * dp;
        }
        for (int64_t j = 0; j <= i; ++j) dS[i * T + j] = P[i * T + j] * (dS[i * T + j] - rowsum);
      }
      for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j <= i; ++j)
          for (int64_t d = 0; d < D; ++d) {
            o.dq[qi(b, i, h) + d] += scale * dS[i * T + j] * in.k[ki(b, j, h) + d];
            o.dk[ki(b, j, h) + d] += scale * dS[i * T + j] * in.q[qi(b, i, h) + d];
            o.dv[ki(b, j, h) + d] += P[i * T + j] * in.dout[qi(b, i, h) + d];
          }
    }
  }
  return o;
}

// max_i |a_i - b_i| / max_i |b_i|: error relative to the tensor's scale, so that elements that
// happen to be near zero do not demand an impossible per-element relative accuracy.
template <typename T>
double relative_error(const std::vector<T>& a, const std::vector<double>& b) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < b.size(); ++i) {
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

}  // namespace
}  // namespace flywheel
