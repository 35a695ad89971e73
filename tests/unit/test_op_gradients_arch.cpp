// The ops behind the Hugging Face architecture switches, against float64 finite differences
// (op_gradient_check.h) and hand-derived values: Llama-3 RoPE frequency scaling, the projection
// biases (attention_bias), and Qwen3's per-head q/k RMSNorm followed by RoPE (qk_norm), composed
// exactly as model/attention_block.cpp runs them.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "op_gradient_check.h"
#include "ops/elementwise.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"

namespace flywheel {
namespace {
using namespace op_check;

ops::RopeScaling llama3(double factor, double low, double high, double original) {
  ops::RopeScaling s;
  s.type = ops::RopeScaling::Type::kLlama3;
  s.factor = factor;
  s.low_freq_factor = low;
  s.high_freq_factor = high;
  s.original_max_positions = original;
  return s;
}

// head_dim 16, theta 1e4: inv_freq_j = 10^(-j/2), wavelength 2 pi 10^(j/2) = 6.3, 19.9, 62.8, 198.7, ...
// tokens. With L = 64, low 1, high 4 the bands are: < 16 kept, [16, 64] blended, > 64 divided by 8.
TEST(OpGradientRopeScaling, Llama3InvFreqKeepsBlendsAndDividesByWavelength) {
  const std::vector<double> plain = ops::rope_inv_freq(16, 1e4);
  const std::vector<double> scaled = ops::rope_inv_freq(16, 1e4, llama3(8, 1, 4, 64));
  ASSERT_EQ(scaled.size(), 8u);
  for (int j = 0; j < 8; ++j) EXPECT_NEAR(plain[j], std::pow(10.0, -j / 2.0), 1e-15 * plain[j]) << j;
  EXPECT_EQ(scaled[0], plain[0]);  // 6.3 tokens: a high frequency, untouched
  for (int j : {1, 2}) {           // 19.9 and 62.8 tokens: s = (64 / wavelen - 1) / 3
    const double wavelen = 2 * std::numbers::pi * std::pow(10.0, j / 2.0);
    const double s = (64 / wavelen - 1) / 3;
    EXPECT_GT(s, 0.0);
    EXPECT_LT(s, 1.0);
    EXPECT_NEAR(scaled[j], (1 - s) * plain[j] / 8 + s * plain[j], 1e-15) << j;
  }
  for (int j = 3; j < 8; ++j) EXPECT_DOUBLE_EQ(scaled[j], plain[j] / 8) << j;
}

// Llama-3.1's own numbers (head_dim 128, theta 5e5, factor 8, 1, 4, 8192): the blend is continuous at
// both band edges, the fastest frequency stays 1 rad/token and the slowest turns 8 times slower.
TEST(OpGradientRopeScaling, Llama31SettingsAreMonotoneAndContinuous) {
  const ops::RopeScaling s = llama3(8, 1, 4, 8192);
  const std::vector<double> plain = ops::rope_inv_freq(128, 5e5), scaled = ops::rope_inv_freq(128, 5e5, s);
  EXPECT_EQ(scaled.front(), 1.0);
  EXPECT_DOUBLE_EQ(scaled.back(), plain.back() / 8);
  for (size_t j = 1; j < scaled.size(); ++j) EXPECT_LT(scaled[j], scaled[j - 1]) << j;
  for (size_t j = 0; j < scaled.size(); ++j) {
    EXPECT_LE(scaled[j], plain[j]);
    EXPECT_GE(scaled[j], plain[j] / 8);
  }
  // Continuity: at wavelen = L / high the blend gives inv_freq, at L / low it gives inv_freq / 8.
  const double at_high = 2 * std::numbers::pi / (8192.0 / 4), at_low = 2 * std::numbers::pi / 8192.0;
  // head_dim 4 has inv_freq_1 = theta^(-1/2): theta = f^(-2) puts frequency f there.
  const std::vector<double> edge_high = ops::rope_inv_freq(4, std::pow(at_high, -2.0), s);
  const std::vector<double> edge_low = ops::rope_inv_freq(4, std::pow(at_low, -2.0), s);
  EXPECT_NEAR(edge_high[1], at_high, 1e-12 * at_high);
  EXPECT_NEAR(edge_low[1], at_low / 8, 1e-12 * at_low);
}

// The scaled table rotates by position x scaled frequency, and its inverse is the backward.
TEST(OpGradientRopeScaling, ScaledTableRotatesAtScaledAnglesAndInverseIsBackward) {
  std::mt19937 rng(21);
  const int64_t hd = 16, half = hd / 2, batch = 2, seq = 5, heads = 3, offset = 7;
  const ops::RopeScaling s = llama3(8, 1, 4, 64);
  const ops::RopeTable<double> table(hd, 16, 1e4, s);
  const std::vector<double> inv_freq = ops::rope_inv_freq(hd, 1e4, s);
  const Vec x = random_vector(batch * seq * heads * hd, rng), r = random_vector(x.size(), rng);
  Vec y = x;
  ops::rope_apply<double>(table, y.data(), batch, seq, heads, offset, false);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = 0; j < half; ++j) {
          const size_t at = static_cast<size_t>(((b * seq + t) * heads + h) * hd);
          const double a = static_cast<double>(offset + t) * inv_freq[j];
          EXPECT_NEAR(y[at + j], x[at + j] * std::cos(a) - x[at + j + half] * std::sin(a), 1e-14);
          EXPECT_NEAR(y[at + j + half], x[at + j + half] * std::cos(a) + x[at + j] * std::sin(a), 1e-14);
        }
  auto loss = [&](const Vec& xv) {
    Vec out = xv;
    ops::rope_apply<double>(table, out.data(), batch, seq, heads, offset, false);
    return dot(out, r);
  };
  Vec analytic = r;
  ops::rope_apply<double>(table, analytic.data(), batch, seq, heads, offset, true);
  EXPECT_TRUE(matches_finite_differences(loss, x, analytic));
}

// y = x + b (rows of width d, 70 > one 64-column block): dL/db = column sums of R, accumulated.
TEST(OpGradientRowBias, ForwardAddsPerColumnAndBackwardMatchesFiniteDifferences) {
  std::mt19937 rng(22);
  const int64_t rows = 9, d = 70;
  const Vec x = random_vector(rows * d, rng), b = random_vector(d, rng), r = random_vector(rows * d, rng);
  Vec y = x;
  ops::add_row_bias<double>(y.data(), b.data(), rows, d);
  for (int64_t i = 0; i < rows * d; ++i) EXPECT_EQ(y[i], x[i] + b[i % d]);
  auto loss = [&](const Vec& bv) {
    Vec out = x;
    ops::add_row_bias<double>(out.data(), bv.data(), rows, d);
    return dot(out, r);
  };
  Vec db(d, 0.5);  // accumulates onto what is there
  ops::row_bias_backward<double>(r.data(), db.data(), rows, d);
  for (double& v : db) v -= 0.5;
  EXPECT_TRUE(matches_finite_differences(loss, b, db));
}

// Qwen3's q path: q = RoPE(RMSNorm_hd(q_raw; w)) per (row, head), w [hd] shared by the heads.
// Backward as attention_block runs it: rotate the gradient back, then the row-norm backward over
// n * heads rows of width hd. Checked against finite differences in q_raw and in w.
TEST(OpGradientHeadNorm, PerHeadRmsNormThenRopeMatchesFiniteDifferences) {
  std::mt19937 rng(23);
  const int64_t n = 4, heads = 3, hd = 8, rows = n * heads;
  const ops::RopeTable<double> table(hd, 8, 100.0, llama3(2, 1, 4, 16));
  const Vec q = random_vector(rows * hd, rng, -2, 2), w = random_vector(hd, rng, 0.5, 1.5);
  const Vec r = random_vector(q.size(), rng);
  const double eps = 1e-6;
  auto forward = [&](const Vec& qv, const Vec& wv) {
    Vec y(qv.size()), rstd(rows);
    ops::rmsnorm_forward<double>(qv.data(), wv.data(), y.data(), rstd.data(), rows, hd, eps);
    ops::rope_apply<double>(table, y.data(), 1, n, heads, 0, false);
    return std::pair(y, rstd);
  };
  const Vec rstd = forward(q, w).second;
  Vec dy = r, dq(q.size()), dw(hd, 0.0);
  ops::rope_apply<double>(table, dy.data(), 1, n, heads, 0, true);
  ops::rmsnorm_backward<double>(q.data(), w.data(), rstd.data(), dy.data(), dq.data(), dw.data(), rows, hd);
  EXPECT_TRUE(matches_finite_differences([&](const Vec& qv) { return dot(forward(qv, w).first, r); }, q, dq));
  EXPECT_TRUE(matches_finite_differences([&](const Vec& wv) { return dot(forward(q, wv).first, r); }, w, dw));
  // Each head is normalised on its own: head 1 of row 0 has unit RMS before the gain.
  Vec ones(hd, 1.0), y(q.size()), unused(rows);
  ops::rmsnorm_forward<double>(q.data(), ones.data(), y.data(), unused.data(), rows, hd, eps);
  double sum_sq = 0;
  for (int64_t i = hd; i < 2 * hd; ++i) sum_sq += y[i] * y[i];
  EXPECT_NEAR(sum_sq / hd, 1.0, 1e-5);
}

TEST(OpGradientFloatVsDouble, RowBiasAndScaledRope) {
  expect_float_agrees_with_double([](auto tag) {
    using T = decltype(tag);
    std::mt19937 rng(24);
    const int64_t rows = 5, d = 67, hd = 8;
    const Vec x = random_vector(rows * d, rng), b = random_vector(d, rng), q = random_vector(rows * 2 * hd, rng);
    std::vector<T> y = cast<T>(x), db(d, T(0)), qt = cast<T>(q);
    ops::add_row_bias<T>(y.data(), cast<T>(b).data(), rows, d);
    ops::row_bias_backward<T>(cast<T>(x).data(), db.data(), rows, d);
    const ops::RopeTable<T> table(hd, rows, 1e4, llama3(8, 1, 4, 16));
    ops::rope_apply<T>(table, qt.data(), 1, rows, 2, 0, false);
    return std::vector<Vec>{as_double(y), as_double(db), as_double(qt)};
  });
}

}  // namespace
}  // namespace flywheel
