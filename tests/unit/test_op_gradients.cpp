// Every CPU op's backward (ops/*.h) against float64 central finite differences, the forward
// semantics the gradients depend on, input checks, float against double per op family, and AdamW
// against a hand-computed two-step reference.
//
// Method: for an op out = f(x) and a fixed random upstream gradient R, the scalar
// L(x) = sum(out(x) * R) has dL/dx = backward(R); that analytic gradient is compared with
// (L(x + h e_i) - L(x - h e_i)) / 2h for EVERY element i, all in double.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <random>
#include <vector>

#include "core/error.h"
#include "op_gradient_check.h"
#include "ops/adamw.h"
#include "ops/elementwise.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/gemm.h"
#include "ops/moe_router.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"

namespace flywheel {
namespace {
using namespace op_check;

// The checker itself has teeth: plausible wrong gradients are rejected.
TEST(OpGradientHarness, RejectsWrongGradients) {
  std::mt19937 rng(7);
  const int64_t n = 6;
  const Vec gate = random_vector(n, rng, -3, 3), up = random_vector(n, rng), dout = random_vector(n, rng);
  auto loss = [&](const Vec& g) {
    Vec out(n);
    ops::swiglu_forward<double>(g.data(), up.data(), out.data(), n);
    return dot(out, dout);
  };
  Vec wrong(n);  // silu'(g) mistaken for sigmoid(g): drops the g * s * (1 - s) term
  for (int64_t i = 0; i < n; ++i) wrong[i] = dout[i] * up[i] / (1 + std::exp(-gate[i]));
  EXPECT_FALSE(matches_finite_differences(loss, gate, wrong));
  Vec dgate(n), dup(n);
  ops::swiglu_backward<double>(gate.data(), up.data(), dout.data(), dgate.data(), dup.data(), n);
  dgate[3] += 1e-4;  // one element off by 100x the tolerance
  EXPECT_FALSE(matches_finite_differences(loss, gate, dgate));
}

TEST(OpGradientLinear, ForwardAndBackwardMatchDefinitionAndFiniteDifferences) {
  std::mt19937 rng(1);
  const int64_t n = 3, in = 5, out = 4;
  const Vec x = random_vector(n * in, rng), w = random_vector(out * in, rng), dy = random_vector(n * out, rng);
  auto forward = [&](const Vec& xv, const Vec& wv) {
    Vec y(n * out);
    ops::linear_forward<double>(xv.data(), wv.data(), y.data(), n, in, out);
    return y;
  };
  const Vec y = forward(x, w);  // y = x W^T with W stored [out, in]
  for (int64_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double expected = 0;
      for (int64_t i = 0; i < in; ++i) expected += x[r * in + i] * w[o * in + i];
      EXPECT_NEAR(y[r * out + o], expected, 1e-12);
    }
  auto loss_of_x = [&](const Vec& xv) { return dot(forward(xv, w), dy); };
  auto loss_of_w = [&](const Vec& wv) { return dot(forward(x, wv), dy); };

  // accumulate_dx = false overwrites dx; dweight always adds to what it holds.
  const Vec dx_before = random_vector(n * in, rng), dw_before = random_vector(out * in, rng);
  Vec dx = dx_before, dw = dw_before;
  ops::linear_backward<double>(x.data(), w.data(), dy.data(), dx.data(), dw.data(), n, in, out, false);
  EXPECT_TRUE(matches_finite_differences(loss_of_x, x, dx));
  EXPECT_TRUE(matches_finite_differences(loss_of_w, w, minus(dw, dw_before)));

  // accumulate_dx = true adds onto dx; a second call adds a second copy onto dweight.
  dx = dx_before;
  const Vec dw_after_first = dw;
  ops::linear_backward<double>(x.data(), w.data(), dy.data(), dx.data(), dw.data(), n, in, out, true);
  EXPECT_TRUE(matches_finite_differences(loss_of_x, x, minus(dx, dx_before)));
  EXPECT_TRUE(matches_finite_differences(loss_of_w, w, minus(dw, dw_after_first)));
}

TEST(OpGradientRmsNorm, ForwardAndBackwardMatchDefinitionAndFiniteDifferences) {
  std::mt19937 rng(2);
  const int64_t n = 5, d = 8;  // 5 rows: uneven split of the dweight partials over threads
  const double eps = 1e-5;
  const Vec x = random_vector(n * d, rng), w = random_vector(d, rng, 0.5, 1.5), dy = random_vector(n * d, rng);
  auto forward = [&](const Vec& xv, const Vec& wv, Vec* rstd = nullptr) {
    Vec y(n * d), r(n);
    ops::rmsnorm_forward<double>(xv.data(), wv.data(), y.data(), r.data(), n, d, eps);
    if (rstd) *rstd = r;
    return y;
  };
  Vec rstd;
  const Vec y = forward(x, w, &rstd);
  for (int64_t r = 0; r < n; ++r) {
    double mean_sq = 0;
    for (int64_t i = 0; i < d; ++i) mean_sq += x[r * d + i] * x[r * d + i] / d;
    const double expected_rstd = 1 / std::sqrt(mean_sq + eps);
    EXPECT_NEAR(rstd[r], expected_rstd, 1e-12 * expected_rstd);
    for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(y[r * d + i], x[r * d + i] * expected_rstd * w[i], 1e-12);
  }
  Vec dx(n * d, 123.0);  // garbage: dx is overwritten
  const Vec dw_before = random_vector(d, rng);
  Vec dw = dw_before;
  ops::rmsnorm_backward<double>(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), n, d);
  EXPECT_TRUE(matches_finite_differences([&](const Vec& xv) { return dot(forward(xv, w), dy); }, x, dx));
  EXPECT_TRUE(
      matches_finite_differences([&](const Vec& wv) { return dot(forward(x, wv), dy); }, w, minus(dw, dw_before)));
}

// RoPE on x[batch, seq, heads, head_dim] at a position offset, returning a rotated copy.
Vec rope(const ops::RopeTable<double>& table, Vec x, int64_t batch, int64_t seq, int64_t heads, int64_t offset,
         bool inverse) {
  ops::rope_apply<double>(table, x.data(), batch, seq, heads, offset, inverse);
  return x;
}

TEST(OpGradientRope, InverseIsTheBackwardOfForward) {
  std::mt19937 rng(3);
  const int64_t batch = 2, seq = 3, heads = 2, hd = 8, offset = 5;
  const ops::RopeTable<double> table(hd, 16, 100.0);  // small theta: every frequency turns noticeably
  const Vec x = random_vector(batch * seq * heads * hd, rng), dy = random_vector(x.size(), rng);
  auto loss = [&](const Vec& xv) { return dot(rope(table, xv, batch, seq, heads, offset, false), dy); };
  EXPECT_TRUE(matches_finite_differences(loss, x, rope(table, dy, batch, seq, heads, offset, true)));
}

TEST(OpGradientRope, ForwardFollowsRotateHalfAtOffsetPositionsAndInverseRestoresInput) {
  std::mt19937 rng(4);
  const int64_t batch = 2, seq = 3, heads = 2, hd = 8, half = hd / 2, offset = 4;
  const double theta = 100.0;
  const ops::RopeTable<double> table(hd, 16, theta);
  const Vec x = random_vector(batch * seq * heads * hd, rng);
  const Vec y = rope(table, x, batch, seq, heads, offset, false);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t j = 0; j < half; ++j) {
          const int64_t base = ((b * seq + t) * heads + h) * hd;
          const double angle = double(offset + t) * std::pow(theta, -2.0 * double(j) / double(hd));
          const double lo = x[base + j], hi = x[base + j + half];
          EXPECT_NEAR(y[base + j], lo * std::cos(angle) - hi * std::sin(angle), 1e-12);
          EXPECT_NEAR(y[base + j + half], hi * std::cos(angle) + lo * std::sin(angle), 1e-12);
        }
  const Vec back = rope(table, y, batch, seq, heads, offset, true);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], x[i], 1e-12);
}

TEST(OpGradientSwiGlu, BackwardMatchesFiniteDifferencesAndMayAliasInputs) {
  std::mt19937 rng(5);
  const int64_t n = 12;
  const Vec gate = random_vector(n, rng, -4, 4), up = random_vector(n, rng, -2, 2), dout = random_vector(n, rng);
  auto forward = [&](const Vec& g, const Vec& u) {
    Vec out(n);
    ops::swiglu_forward<double>(g.data(), u.data(), out.data(), n);
    return out;
  };
  const Vec out = forward(gate, up);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(out[i], gate[i] / (1 + std::exp(-gate[i])) * up[i], 1e-12);
  Vec dgate(n), dup(n);
  ops::swiglu_backward<double>(gate.data(), up.data(), dout.data(), dgate.data(), dup.data(), n);
  EXPECT_TRUE(matches_finite_differences([&](const Vec& g) { return dot(forward(g, up), dout); }, gate, dgate));
  EXPECT_TRUE(matches_finite_differences([&](const Vec& u) { return dot(forward(gate, u), dout); }, up, dup));

  Vec g = gate, u = up;  // documented: dgate/dup may alias gate/up
  ops::swiglu_backward<double>(g.data(), u.data(), dout.data(), g.data(), u.data(), n);
  for (int64_t i = 0; i < n; ++i) EXPECT_LT(relative_error(g[i], dgate[i]) + relative_error(u[i], dup[i]), 1e-14);
}

TEST(OpGradientCrossEntropy, LossLogprobAndGradientMatchReferenceAndFiniteDifferences) {
  std::mt19937 rng(6);
  const int64_t n = 4, vocab = 7;
  const Vec logits = random_vector(n * vocab, rng, -3, 3);
  const std::vector<int32_t> targets = {2, 0, 6, 3};
  const std::vector<float> weights = {1.0f, 0.5f, 0.0f, 2.0f};  // row 2 is masked out
  auto loss_of = [&](Vec lg) {
    return ops::cross_entropy<double>(lg.data(), targets.data(), weights.data(), n, vocab, false);
  };
  Vec dlogits = logits, logprob(n, 0.0);
  const double loss =
      ops::cross_entropy<double>(dlogits.data(), targets.data(), weights.data(), n, vocab, true, logprob.data());
  double expected_loss = 0;
  for (int64_t r = 0; r < n; ++r) {
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(logits[r * vocab + i]);
    const double expected_logprob = logits[r * vocab + targets[r]] - std::log(sum);
    EXPECT_NEAR(logprob[r], expected_logprob, 1e-12) << "row " << r;  // masked rows too
    expected_loss -= weights[r] * expected_logprob;
  }
  EXPECT_NEAR(loss, expected_loss, 1e-12 * std::abs(expected_loss));
  EXPECT_NEAR(loss_of(logits), loss, 1e-12 * std::abs(loss));  // compute_grad does not change the loss
  for (int64_t i = 0; i < vocab; ++i) EXPECT_EQ(dlogits[2 * vocab + i], 0.0) << "masked row, column " << i;
  EXPECT_TRUE(matches_finite_differences(loss_of, logits, dlogits));
}

TEST(OpGradientEmbedding, BackwardAccumulatesRepeatedTokens) {
  std::mt19937 rng(8);
  // Token 3 appears three times, 2 and 4 never; d = 5 columns split unevenly over 2 threads.
  const std::vector<int32_t> tokens = {3, 1, 3, 0, 3, 5};
  const int64_t vocab = 6, d = 5;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const Vec table = random_vector(vocab * d, rng), dout = random_vector(n * d, rng);
  auto forward = [&](const Vec& tbl) {
    Vec out(n * d);
    ops::embedding_forward<double>(tbl.data(), tokens.data(), out.data(), n, d, vocab);
    return out;
  };
  const Vec out = forward(table);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < d; ++i) EXPECT_EQ(out[r * d + i], table[tokens[r] * d + i]);
  const Vec dtable_before = random_vector(vocab * d, rng);
  Vec dtable = dtable_before;
  ops::embedding_backward<double>(tokens.data(), dout.data(), dtable.data(), n, d);
  EXPECT_TRUE(matches_finite_differences([&](const Vec& tbl) { return dot(forward(tbl), dout); }, table,
                                         minus(dtable, dtable_before)));
  for (int64_t i = 0; i < d; ++i) {
    EXPECT_EQ(dtable[2 * d + i], dtable_before[2 * d + i]);  // unused rows are left alone
    EXPECT_EQ(dtable[4 * d + i], dtable_before[4 * d + i]);
  }
}

// Ids outside the vocabulary (a cross-entropy target, an embedding token) and positions beyond the
// RoPE table throw flywheel::Error rather than reading out of bounds.
TEST(OpGradientInputChecks, OutOfRangeIdsAndPositionsThrow) {
  Vec buffer(2 * 5, 0.0), out(2 * 5);
  const std::vector<float> weights = {1.0f, 1.0f};
  for (int32_t bad : {5, -1}) {
    const std::vector<int32_t> ids = {1, bad};
    EXPECT_THROW(ops::cross_entropy<double>(buffer.data(), ids.data(), weights.data(), 2, 5, true), Error) << bad;
    EXPECT_THROW(ops::embedding_forward<double>(buffer.data(), ids.data(), out.data(), 2, 1, 5), Error) << bad;
  }
  const ops::RopeTable<double> table(2, 4, 100.0);  // positions 3..4 overrun a 4-position table
  EXPECT_THROW(ops::rope_apply<double>(table, buffer.data(), 1, 2, 1, 3), Error);
}

// Router logits whose top-k cannot flip under a 1e-6 step: each row is a random permutation of
// 0, 0.6, 1.2, ... plus jitter below 0.05, so any two logits in a row differ by at least 0.5.
Vec spread_logits(int64_t n, int64_t experts, std::mt19937& rng) {
  Vec logits(n * experts);
  std::uniform_real_distribution<double> jitter(-0.05, 0.05);
  std::vector<int> order(experts);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t e = 0; e < experts; ++e) order[e] = static_cast<int>(e);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t e = 0; e < experts; ++e) logits[r * experts + e] = 0.6 * order[e] + jitter(rng);
  }
  return logits;
}

struct Routed {
  Vec probs, weight;
  std::vector<int32_t> expert;
};

Routed route(const Vec& logits, int64_t n, int64_t experts, int64_t k, bool normalize) {
  Routed r{Vec(n * experts), Vec(n * k), std::vector<int32_t>(n * k)};
  ops::router_forward<double>(logits.data(), r.probs.data(), r.expert.data(), r.weight.data(), n, experts, k,
                              normalize);
  return r;
}

TEST(OpGradientRouter, BackwardMatchesFiniteDifferences) {
  const int64_t n = 3, experts = 6;
  for (int64_t k : {1, 2, 4})
    for (bool normalize : {false, true})
      for (bool with_extra : {false, true}) {
        SCOPED_TRACE(testing::Message()
                     << "k " << k << " normalize " << normalize << " dprobs_extra " << with_extra);
        std::mt19937 rng(static_cast<uint32_t>(9 + k));
        const Vec logits = spread_logits(n, experts, rng);
        const Vec dweight = random_vector(n * k, rng), dprobs_extra = random_vector(n * experts, rng);
        const Routed base = route(logits, n, experts, k, normalize);
        auto loss = [&](const Vec& lg) {
          const Routed r = route(lg, n, experts, k, normalize);
          EXPECT_EQ(r.expert, base.expert) << "top-k flipped: the finite difference would be meaningless";
          return dot(r.weight, dweight) + (with_extra ? dot(r.probs, dprobs_extra) : 0.0);
        };
        Vec dlogits(n * experts, 99.0);  // garbage: dlogits is overwritten
        ops::router_backward<double>(base.probs.data(), base.expert.data(), base.weight.data(), dweight.data(),
                                     with_extra ? dprobs_extra.data() : nullptr, dlogits.data(), n, experts, k,
                                     normalize);
        EXPECT_TRUE(matches_finite_differences(loss, logits, dlogits));
      }
}

TEST(OpGradientRouter, ForwardPicksTopKDescendingWithLowerIndexOnTies) {
  const Vec logits = {0.1, 2.0, 1.0, 2.0, -1.0};  // experts 1 and 3 tie
  double sum = 0;
  for (double l : logits) sum += std::exp(l);
  for (bool normalize : {false, true}) {
    const Routed r = route(logits, 1, 5, 3, normalize);
    EXPECT_EQ(r.expert, (std::vector<int32_t>{1, 3, 2}));
    const double selected = r.probs[1] + r.probs[3] + r.probs[2];
    for (int j = 0; j < 3; ++j) {
      const double p = std::exp(logits[r.expert[j]]) / sum;
      EXPECT_NEAR(r.probs[r.expert[j]], p, 1e-12);
      EXPECT_NEAR(r.weight[j], normalize ? p / selected : p, 1e-12);
    }
  }
}

TEST(OpGradientAdamW, TwoStepsMatchHandComputedReference) {
  ops::AdamWHyper hyper;
  hyper.lr = 0.01, hyper.beta1 = 0.9, hyper.beta2 = 0.95, hyper.eps = 1e-8, hyper.weight_decay = 0.1;
  const Vec p0 = {0.5, -1.0, 2.0, 0.0}, g1 = {0.1, -0.3, 0.0, 1.0}, g2 = {-0.2, -0.3, 0.5, 1.0};
  Vec p = p0, m(4, 0.0), v(4, 0.0);
  for (int64_t step : {1, 2}) {
    hyper.step = step;
    ops::adamw_update<double>(p.data(), (step == 1 ? g1 : g2).data(), m.data(), v.data(), 4, hyper);
    if (step == 1) {  // m/(1-b1) = g, v/(1-b2) = g^2: the Adam part is sign(g), less lr*eps/|g| = 1e-9
      EXPECT_NEAR(p[0], 0.5 - 0.01 * (1 + 0.1 * 0.5), 2e-9);
    }
  }
  // Element 0 by hand: m = 0.9*0.01 - 0.1*0.2 = -0.011, v = 0.95*0.0005 + 0.05*0.04 = 0.002475;
  // p = 0.4895 - 0.01 * ((-0.011/0.19) / sqrt(0.002475/0.0975) + 0.1*0.4895) = 0.49264424...
  EXPECT_NEAR(m[0], -0.011, 1e-15);
  EXPECT_NEAR(v[0], 0.002475, 1e-15);
  EXPECT_NEAR(p[0], 0.4926442402757031, 1e-12);
  // All elements against the textbook recurrence (decay uses the parameter before the step;
  // element 2 has g = 0 at step 1, where only the decay moves it).
  for (size_t i = 0; i < p0.size(); ++i) {
    double pi = p0[i], mi = 0, vi = 0;
    for (int t = 1; t <= 2; ++t) {
      const double g = t == 1 ? g1[i] : g2[i];
      mi = 0.9 * mi + 0.1 * g;
      vi = 0.95 * vi + 0.05 * g * g;
      const double adam = (mi / (1 - std::pow(0.9, t))) / (std::sqrt(vi / (1 - std::pow(0.95, t))) + 1e-8);
      pi -= 0.01 * (adam + 0.1 * pi);
    }
    EXPECT_NEAR(p[i], pi, 1e-12) << "element " << i;
    EXPECT_NEAR(m[i], mi, 1e-15) << "element " << i;
    EXPECT_NEAR(v[i], vi, 1e-15) << "element " << i;
  }
}

TEST(OpGradientAdamW, SumOfSquaresAndScaleInPlace) {
  std::mt19937 rng(10);
  const int64_t n = 3 * 65536 + 77;  // several of sum_of_squares' 65536-element blocks and a ragged tail
  const Vec x = random_vector(n, rng);
  const std::vector<float> xf = cast<float>(x);
  double expected = 0, expected_float = 0;
  for (int64_t i = 0; i < n; ++i) {
    expected += x[i] * x[i];
    expected_float += double(xf[i]) * double(xf[i]);  // the float path must also accumulate in double
  }
  EXPECT_NEAR(ops::sum_of_squares<double>(x.data(), n), expected, 1e-12 * expected);
  EXPECT_NEAR(ops::sum_of_squares<float>(xf.data(), n), expected_float, 1e-12 * expected_float);
  EXPECT_EQ(ops::sum_of_squares<double>(x.data(), 0), 0.0);

  Vec scaled(x.begin(), x.begin() + 100);
  std::vector<float> scaled_f(xf.begin(), xf.begin() + 100);
  ops::scale_in_place<double>(scaled.data(), 100, 0.37);
  ops::scale_in_place<float>(scaled_f.data(), 100, 0.37f);
  for (int64_t i = 0; i < 100; ++i) {
    EXPECT_DOUBLE_EQ(scaled[i], x[i] * 0.37);
    EXPECT_FLOAT_EQ(scaled_f[i], xf[i] * 0.37f);
  }
}

// Float against double, one test per op family: the same inputs (sampled in double, then cast)
// through both instantiations; every output and gradient is compared.
Vec sample(int64_t count, uint32_t seed, double amplitude = 1.0) {
  std::mt19937 rng(seed);
  return random_vector(count, rng, -amplitude, amplitude);
}

TEST(OpGradientFloatVsDouble, Linear) {
  const Vec x = sample(4 * 16, 1), w = sample(8 * 16, 2), dy = sample(4 * 8, 3);
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    std::vector<T> y(4 * 8), dx(4 * 16), dw(8 * 16, T(0));
    ops::linear_forward<T>(cast<T>(x).data(), cast<T>(w).data(), y.data(), 4, 16, 8);
    ops::linear_backward<T>(cast<T>(x).data(), cast<T>(w).data(), cast<T>(dy).data(), dx.data(), dw.data(), 4,
                            16, 8);
    return std::vector<Vec>{as_double(y), as_double(dx), as_double(dw)};
  });
}

TEST(OpGradientFloatVsDouble, RmsNorm) {
  const Vec x = sample(4 * 16, 1), w = sample(16, 2), dy = sample(4 * 16, 3);
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    std::vector<T> y(4 * 16), rstd(4), dx(4 * 16), dw(16, T(0));
    ops::rmsnorm_forward<T>(cast<T>(x).data(), cast<T>(w).data(), y.data(), rstd.data(), 4, 16, 1e-5);
    ops::rmsnorm_backward<T>(cast<T>(x).data(), cast<T>(w).data(), rstd.data(), cast<T>(dy).data(), dx.data(),
                             dw.data(), 4, 16);
    return std::vector<Vec>{as_double(y), as_double(rstd), as_double(dx), as_double(dw)};
  });
}

TEST(OpGradientFloatVsDouble, Rope) {
  const Vec x = sample(2 * 3 * 2 * 8, 1), dy = sample(2 * 3 * 2 * 8, 2);
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    const ops::RopeTable<T> table(8, 32, 10000.0);
    std::vector<T> out = cast<T>(x), din = cast<T>(dy);
    ops::rope_apply<T>(table, out.data(), 2, 3, 2, 20, false);
    ops::rope_apply<T>(table, din.data(), 2, 3, 2, 20, true);
    return std::vector<Vec>{as_double(out), as_double(din)};
  });
}

TEST(OpGradientFloatVsDouble, SwiGlu) {
  const Vec gate = sample(32, 1, 4.0), up = sample(32, 2), dout = sample(32, 3);  // gate: both sigmoid tails
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    const std::vector<T> g = cast<T>(gate), u = cast<T>(up);
    std::vector<T> out(32), dg(32), du(32);
    ops::swiglu_forward<T>(g.data(), u.data(), out.data(), 32);
    ops::swiglu_backward<T>(g.data(), u.data(), cast<T>(dout).data(), dg.data(), du.data(), 32);
    return std::vector<Vec>{as_double(out), as_double(dg), as_double(du)};
  });
}

TEST(OpGradientFloatVsDouble, CrossEntropy) {
  const Vec logits = sample(3 * 16, 1, 3.0);
  const std::vector<int32_t> targets = {3, 0, 15};
  const std::vector<float> weights = {1.0f, 0.0f, 0.25f};
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    std::vector<T> grad = cast<T>(logits), logprob(3);
    const double loss =
        ops::cross_entropy<T>(grad.data(), targets.data(), weights.data(), 3, 16, true, logprob.data());
    return std::vector<Vec>{Vec{loss}, as_double(grad), as_double(logprob)};
  });
}

TEST(OpGradientFloatVsDouble, Embedding) {
  const Vec table = sample(8 * 6, 1), dout = sample(5 * 6, 2);
  const std::vector<int32_t> tokens = {2, 0, 2, 7, 2};
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    std::vector<T> out(5 * 6), dtable(8 * 6, T(0));
    ops::embedding_forward<T>(cast<T>(table).data(), tokens.data(), out.data(), 5, 6, 8);
    ops::embedding_backward<T>(tokens.data(), cast<T>(dout).data(), dtable.data(), 5, 6);
    return std::vector<Vec>{as_double(out), as_double(dtable)};
  });
}

TEST(OpGradientFloatVsDouble, Router) {
  std::mt19937 rng(1);
  const Vec logits = spread_logits(4, 8, rng), dweight = sample(4 * 2, 2), dprobs_extra = sample(4 * 8, 3);
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    std::vector<T> probs(4 * 8), weight(4 * 2), dlogits(4 * 8);
    std::vector<int32_t> expert(4 * 2);
    ops::router_forward<T>(cast<T>(logits).data(), probs.data(), expert.data(), weight.data(), 4, 8, 2, true);
    ops::router_backward<T>(probs.data(), expert.data(), weight.data(), cast<T>(dweight).data(),
                            cast<T>(dprobs_extra).data(), dlogits.data(), 4, 8, 2, true);
    return std::vector<Vec>{as_double(probs), Vec(expert.begin(), expert.end()), as_double(weight),
                            as_double(dlogits)};
  });
}

TEST(OpGradientFloatVsDouble, AdamW) {
  const Vec param = sample(64, 1), grad1 = sample(64, 2), grad2 = sample(64, 3);
  expect_float_agrees_with_double([&](auto tag) {
    using T = decltype(tag);
    std::vector<T> p = cast<T>(param), m(64, T(0)), v(64, T(0));
    ops::AdamWHyper hyper;
    hyper.weight_decay = 0.1;
    for (int64_t step : {1, 2}) {
      hyper.step = step;
      ops::adamw_update<T>(p.data(), cast<T>(step == 1 ? grad1 : grad2).data(), m.data(), v.data(), 64, hyper);
    }
    return std::vector<Vec>{as_double(p), as_double(m), as_double(v)};
  });
}

}  // namespace
}  // namespace flywheel
