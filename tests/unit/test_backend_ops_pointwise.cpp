// Cross-check of every compute backend against the float64 oracles of ops/, continued (the method
// is described in test_backend_ops.cpp): elementwise ops, row moves, embedding, the cross-entropy
// loss and the optimizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <tuple>

#include "backend_ops_check.h"
#include "ops/adamw.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/swiglu.h"

namespace flywheel::testing {
namespace {

constexpr int64_t kLengths[] = {1, 15, 1000, 4099};

double max_magnitude(const Floats& x) {
  double m = 0;
  for (float v : x) m = std::max(m, std::fabs(double(v)));
  return m;
}

// With an exp good to 2 ulp (4u) the sigmoid s = 1 / (1 + exp(-g)) is within ~6u, so silu(g) u is
// within 8u of itself: 16u. Backward: dup = dout g s likewise; dgate = dout u s (1 + g (1 - s))
// cancels inside the bracket, whose error is ~6u |g| of (1 + |g| (1 - s)): (12 + 6 max|g|) u of
// |dout u| s (1 + |g| (1 - s)).
TEST(BackendOps, Swiglu) {
  for_each_backend([](Backend& be) {
    for (const int64_t n : kLengths) {
      SCOPED_TRACE("n " + std::to_string(n));
      const Floats gate = random_floats(n, n + 1, -6, 6), up = random_floats(n, n + 2), dout = random_floats(n, n + 3);
      const Floats out = run_twice("swiglu", [&] {
        Floats out = garbage(n);
        be.swiglu(gate.data(), up.data(), out.data(), n);
        return out;
      });
      Doubles ref(out.size()), ref_dgate(out.size()), ref_dup(out.size());
      ops::swiglu_forward<double>(widen(gate).data(), widen(up).data(), ref.data(), n);
      expect_near("swiglu", out, ref, magnitudes(narrow(ref)), 16 * kUnit);

      const auto [dgate, dup] = run_twice("swiglu_backward", [&] {
        Floats dgate = garbage(n), dup = garbage(n);
        be.swiglu_backward(gate.data(), up.data(), dout.data(), dgate.data(), dup.data(), n);
        return std::tuple(dgate, dup);
      });
      ops::swiglu_backward<double>(widen(gate).data(), widen(up).data(), widen(dout).data(), ref_dgate.data(),
                                   ref_dup.data(), n);
      Doubles scale_dgate(out.size());
      for (size_t i = 0; i < gate.size(); ++i) {
        const double g = gate[i], s = 1 / (1 + std::exp(-g));
        scale_dgate[i] = std::fabs(double(dout[i]) * up[i]) * s * (1 + std::fabs(g) * (1 - s));
      }
      expect_near("swiglu_backward dgate", dgate, ref_dgate, scale_dgate, (12 + 6 * max_magnitude(gate)) * kUnit);
      expect_near("swiglu_backward dup", dup, ref_dup, magnitudes(narrow(ref_dup)), 16 * kUnit);

      // dgate / dup may alias gate / up (backend.h): in place gives the same bits.
      Floats in_place_gate = gate, in_place_up = up;
      be.swiglu_backward(in_place_gate.data(), in_place_up.data(), dout.data(), in_place_gate.data(),
                         in_place_up.data(), n);
      EXPECT_TRUE(same_bits(in_place_gate, dgate) && same_bits(in_place_up, dup)) << "aliased swiglu_backward";
    }
  });
}

// add, add_in_place and scale_in_place are one correctly rounded operation (within u of the
// result); fill and the row moves copy bits.
TEST(BackendOps, Elementwise) {
  for_each_backend([](Backend& be) {
    for (const int64_t n : kLengths) {
      SCOPED_TRACE("n " + std::to_string(n));
      const Floats a = random_floats(n, n + 1), b = random_floats(n, n + 2, -3, 3);
      Doubles sum(a.size()), product(a.size());
      constexpr float kFactor = 0.37f;
      for (size_t i = 0; i < a.size(); ++i) {
        sum[i] = double(a[i]) + b[i];
        product[i] = double(a[i]) * kFactor;
      }
      const Floats out = run_twice("add", [&] {
        Floats out = garbage(n);
        be.add(a.data(), b.data(), out.data(), n);
        return out;
      });
      expect_near("add", out, sum, magnitudes(narrow(sum)), 1.01 * kUnit);
      const Floats accumulated = run_twice("add_in_place", [&] {
        Floats x = a;
        be.add_in_place(x.data(), b.data(), n);
        return x;
      });
      expect_near("add_in_place", accumulated, sum, magnitudes(narrow(sum)), 1.01 * kUnit);
      const Floats scaled = run_twice("scale_in_place", [&] {
        Floats x = a;
        be.scale_in_place(x.data(), n, kFactor);
        return x;
      });
      expect_near("scale_in_place", scaled, product, magnitudes(narrow(product)), 1.01 * kUnit);
      const Floats filled = run_twice("fill", [&] {
        Floats x = garbage(n);
        be.fill(x.data(), n, -2.5f);
        return x;
      });
      EXPECT_TRUE(same_bits(filled, Floats(a.size(), -2.5f))) << "fill";
    }
  });
}

// add_bias is one IEEE add per element: bit for bit the float sum (also from a bf16 bias, widened
// exactly). bias_backward sums `rows` floats per column: within rows * u of the sum of magnitudes.
TEST(BackendOps, Bias) {
  struct Case {
    int64_t rows, d;
  };
  for_each_backend([](Backend& be) {
    for (const Case s : {Case{1, 1}, Case{7, 65}, Case{130, 16}}) {
      SCOPED_TRACE("rows " + std::to_string(s.rows) + ", d " + std::to_string(s.d));
      const Floats y0 = random_floats(s.rows * s.d, s.rows + 11), bias = random_floats(s.d, s.rows + 12);
      const Floats biased = run_twice("add_bias", [&] {
        Floats y = y0;
        be.add_bias(y.data(), Tensor::view(bias.data(), {s.d}), s.rows, s.d);
        return y;
      });
      Floats expected = y0;
      for (int64_t i = 0; i < s.rows * s.d; ++i) expected[i] += bias[i % s.d];
      EXPECT_TRUE(same_bits(biased, expected)) << "add_bias";

      const Floats dy = random_floats(s.rows * s.d, s.rows + 13);
      const Floats dbias = run_twice("bias_backward", [&] {
        Floats db(static_cast<size_t>(s.d), 0.25f);
        be.bias_backward(dy.data(), db.data(), s.rows, s.d);
        return db;
      });
      Doubles ref(static_cast<size_t>(s.d), 0.25), scale(static_cast<size_t>(s.d), 0.25);
      for (int64_t i = 0; i < s.rows * s.d; ++i) ref[i % s.d] += dy[i], scale[i % s.d] += std::fabs(dy[i]);
      expect_near("bias_backward", dbias, ref, scale, (s.rows + 1) * kUnit);
    }
  });
}

// broadcast_row, gather_rows and scatter_rows copy rows: compared bit for bit.
TEST(BackendOps, RowMoves) {
  struct Case {
    int64_t rows, d;
  };
  for_each_backend([](Backend& be) {
    for (const Case s : {Case{1, 1}, Case{7, 33}, Case{130, 16}}) {
      SCOPED_TRACE("rows " + std::to_string(s.rows) + ", d " + std::to_string(s.d));
      const int64_t src_rows = s.rows + 3;
      const Floats src = random_floats(src_rows * s.d, s.rows + 1), row = random_floats(s.d, s.rows + 2);
      const Floats broadcast = run_twice("broadcast_row", [&] {
        Floats out = garbage(s.rows * s.d);
        be.broadcast_row(row.data(), out.data(), s.rows, s.d);
        return out;
      });
      Floats expected_broadcast;
      for (int64_t r = 0; r < s.rows; ++r) expected_broadcast.insert(expected_broadcast.end(), row.begin(), row.end());
      EXPECT_TRUE(same_bits(broadcast, expected_broadcast)) << "broadcast_row";

      // gather reads any rows, repeats allowed; scatter writes distinct rows and leaves the rest.
      const std::vector<int64_t> gather_index = random_ints<int64_t>(s.rows, s.rows + 3, src_rows);
      std::vector<int64_t> scatter_index(static_cast<size_t>(src_rows));
      std::iota(scatter_index.begin(), scatter_index.end(), 0);
      std::shuffle(scatter_index.begin(), scatter_index.end(), std::mt19937_64(s.rows + 4));
      scatter_index.resize(static_cast<size_t>(s.rows));
      const Floats dst0 = random_floats(src_rows * s.d, s.rows + 5);
      const auto [gathered, scattered] = run_twice("gather_rows / scatter_rows", [&] {
        Floats gathered = garbage(s.rows * s.d), scattered = dst0;
        be.gather_rows(src.data(), gather_index.data(), gathered.data(), s.rows, s.d);
        be.scatter_rows(src.data(), scatter_index.data(), scattered.data(), s.rows, s.d);
        return std::tuple(gathered, scattered);
      });
      Floats expected_gather, expected_scatter = dst0;
      for (int64_t i = 0; i < s.rows; ++i) {
        expected_gather.insert(expected_gather.end(), src.begin() + gather_index[i] * s.d,
                               src.begin() + (gather_index[i] + 1) * s.d);
        std::copy(src.begin() + i * s.d, src.begin() + (i + 1) * s.d,
                  expected_scatter.begin() + scatter_index[i] * s.d);
      }
      EXPECT_TRUE(same_bits(gathered, expected_gather)) << "gather_rows";
      EXPECT_TRUE(same_bits(scattered, expected_scatter)) << "scatter_rows";
    }
  });
}

// Lookups copy the (bf16: widened) table rows exactly; the backward sums each token's rows onto
// the table: at most n + 1 terms per element, dot_tolerance(n + 1) of the sum of magnitudes.
TEST(BackendOps, Embedding) {
  for_each_backend([](Backend& be) {
    for (const auto& [n, d, vocab] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {9, 17, 5}, {100, 64, 300}}) {
      std::vector<int32_t> tokens = random_ints<int32_t>(n, n + 1, vocab);
      tokens.back() = static_cast<int32_t>(vocab - 1);
      const Floats table_values = random_floats(vocab * d, n + 2);
      for (const DType dtype : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE("n " + std::to_string(n) + ", d " + std::to_string(d) + ", table " + dtype_name(dtype));
        const Weight table = make_weight(table_values, dtype, {vocab, d});
        const Floats out = run_twice("embedding", [&] {
          Floats out = garbage(n * d);
          be.embedding(table.tensor, tokens.data(), out.data(), n, d, vocab);
          return out;
        });
        Floats expected;
        for (const int32_t t : tokens)
          expected.insert(expected.end(), table.values.begin() + t * d, table.values.begin() + (t + 1) * d);
        EXPECT_TRUE(same_bits(out, expected)) << "embedding rows";
      }
      const Floats dout = random_floats(n * d, n + 3), dtable0 = random_floats(vocab * d, n + 4);
      const Floats dtable = run_twice("embedding_backward", [&] {
        Floats dtable = dtable0;
        be.embedding_backward(tokens.data(), dout.data(), dtable.data(), n, d);
        return dtable;
      });
      Doubles ref = widen(dtable0), scale = magnitudes(dtable0);
      ops::embedding_backward<double>(tokens.data(), widen(dout).data(), ref.data(), n, d);
      ops::embedding_backward<double>(tokens.data(), magnitudes(dout).data(), scale.data(), n, d);
      expect_near("embedding_backward", dtable, ref, scale, dot_tolerance(n + 1));
    }
  });
}

// With logits in [-4, 4]: each exp(x - max) is within (2 + 8) u (a 1-ulp exp, the subtraction's u
// times |x - max| <= 8), the V-term sum within gamma_V, the log turns that relative error into an
// absolute one, and m + log, x_t - lse round values below 15: |logp error| <= (V + 48) u, the
// loss sum |w| times that. The gradient w (exp(x - lse) - [target]) is within (V + 72) u of
// |w| (p + [target]) (lse's error, then one exp and two roundings).
TEST(BackendOps, CrossEntropy) {
  for_each_backend([](Backend& be) {
    for (const auto& [n, vocab] : {std::pair<int64_t, int64_t>{1, 1}, {3, 17}, {16, 1000}, {4, 3001}}) {
      const Floats logits = random_floats(n * vocab, n + 1, -4, 4);
      const std::vector<int32_t> targets = random_ints<int32_t>(n, n + 2, vocab);
      Floats weights = random_floats(n, n + 3, -1, 2);
      weights[0] = n > 1 ? 0.0f : weights[0];  // weight-0 rows: logprob kept, gradient row exactly zero
      Doubles ref_grad = widen(logits), ref_logp(static_cast<size_t>(n));
      const double ref_loss = ops::cross_entropy<double>(ref_grad.data(), targets.data(), weights.data(), n, vocab,
                                                         true, ref_logp.data());
      Doubles scale_grad(logits.size());
      double scale_loss = 0;
      for (int64_t r = 0; r < n; ++r) {
        const double lse = logits[r * vocab + targets[r]] - ref_logp[r], w = std::fabs(weights[r]);
        for (int64_t i = 0; i < vocab; ++i)
          scale_grad[r * vocab + i] = w * (std::exp(logits[r * vocab + i] - lse) + (i == targets[r]));
        scale_loss += w;
      }
      const double tol_logp = static_cast<double>(vocab + 48) * kUnit;
      for (const bool grad : {true, false}) {
        SCOPED_TRACE("n " + std::to_string(n) + ", vocab " + std::to_string(vocab) + (grad ? ", grad" : ""));
        const auto [dlogits, logp, loss] = run_twice("cross_entropy", [&] {
          Floats in_out = logits, logp = garbage(n);
          const double loss =
              be.cross_entropy(in_out.data(), targets.data(), weights.data(), n, vocab, grad, logp.data());
          return std::tuple(in_out, logp, loss);
        });
        expect_near("cross_entropy logprob", logp, ref_logp, 1.0, tol_logp);
        expect_near("cross_entropy loss", Doubles{loss}, Doubles{ref_loss}, scale_loss, tol_logp);
        if (grad)
          expect_near("cross_entropy dlogits", dlogits, ref_grad, scale_grad, static_cast<double>(vocab + 72) * kUnit);
        else
          EXPECT_TRUE(same_bits(dlogits, logits)) << "cross_entropy without grad changed the logits";
        Floats untouched = logits;  // without target_logprob: the same loss
        EXPECT_TRUE(same_bits(loss, be.cross_entropy(untouched.data(), targets.data(), weights.data(), n, vocab,
                                                     grad, nullptr)));
      }
    }
  });
}

// The fp32 path rounds the hyperparameters: beta1 to fp32 errs by u beta1, which is u beta1 /
// (1 - beta1) of (1 - beta1). So m is within (3 + beta1 / (1 - beta1)) u of |beta1 m| +
// |(1 - beta1) g|, v within (4 + beta2 / (1 - beta2)) u of beta2 v + (1 - beta2) g^2, and the
// update m^ / (sqrt(v^) + eps) + wd p within tol_m + tol_v / 2 + 12u (bias corrections, sqrt, eps,
// divide, decay, lr, the subtraction) of |p| + lr (|m^| / (sqrt(v^) + eps) + wd |p|).
TEST(BackendOps, AdamW) {
  for_each_backend([](Backend& be) {
    for (const int64_t n : kLengths)
      for (const int64_t step : {1, 10}) {
        SCOPED_TRACE("n " + std::to_string(n) + ", step " + std::to_string(step));
        const ops::AdamWHyper h{
            .lr = 3e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .step = step};
        const Floats p0 = random_floats(n, n + 1), g = random_floats(n, n + 2);
        const Floats m0 = random_floats(n, n + 3, -0.1, 0.1), v0 = random_floats(n, n + 4, 0, 0.01);
        const auto [p, m, v] = run_twice("adamw", [&] {
          Floats p = p0, m = m0, v = v0;
          be.adamw(p.data(), g.data(), m.data(), v.data(), n, h);
          return std::tuple(p, m, v);
        });
        Doubles ref_p = widen(p0), ref_m = widen(m0), ref_v = widen(v0);
        ops::adamw_update<double>(ref_p.data(), widen(g).data(), ref_m.data(), ref_v.data(), n, h);
        Doubles scale_p(p.size()), scale_m(p.size()), scale_v(p.size());
        const double bias1 = 1 - std::pow(h.beta1, step), bias2 = 1 - std::pow(h.beta2, step);
        for (size_t i = 0; i < p.size(); ++i) {
          scale_m[i] = h.beta1 * std::fabs(m0[i]) + (1 - h.beta1) * std::fabs(g[i]);
          scale_v[i] = h.beta2 * v0[i] + (1 - h.beta2) * double(g[i]) * g[i];
          const double ratio = std::fabs(ref_m[i]) / bias1 / (std::sqrt(ref_v[i] / bias2) + h.eps);
          scale_p[i] = std::fabs(p0[i]) + h.lr * (ratio + h.weight_decay * std::fabs(p0[i]));
        }
        const double tol_m = (3 + h.beta1 / (1 - h.beta1)) * kUnit, tol_v = (4 + h.beta2 / (1 - h.beta2)) * kUnit;
        expect_near("adamw m", m, ref_m, scale_m, tol_m);
        expect_near("adamw v", v, ref_v, scale_v, tol_v);
        expect_near("adamw param", p, ref_p, scale_p, tol_m + tol_v / 2 + 12 * kUnit);
      }
  });
}

// fp32 squares are exact in double; a sum of n positive doubles is within (n - 1) 2^-53 of itself
// in any order, so backend and reference differ by at most 2 n 2^-53 of the sum.
TEST(BackendOps, SumOfSquares) {
  for_each_backend([](Backend& be) {
    for (const int64_t n : {int64_t{0}, int64_t{1}, int64_t{17}, int64_t{70001}}) {
      SCOPED_TRACE("n " + std::to_string(n));
      const Floats x = random_floats(n, n + 1, -2, 2);
      const double got = run_twice("sum_of_squares", [&] { return be.sum_of_squares(x.data(), n); });
      const double ref = ops::sum_of_squares<double>(widen(x).data(), n);
      expect_near("sum_of_squares", Doubles{got}, Doubles{ref}, ref, 2.02 * static_cast<double>(n) * kUnit64);
    }
  });
}

}  // namespace
}  // namespace flywheel::testing
