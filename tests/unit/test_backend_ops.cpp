// Cross-check of every compute backend (registered_backends()) against the float64 oracles of
// ops/, in the spirit of ggml's test-backend-ops: each op runs on seeded random inputs of several
// shapes (sizes off multiples of 16, n = 1, reductions of length 1) and is compared with the
// double template of the same op on the same inputs widened to double (bf16 weights: their
// bf16-rounded values). Every op also runs twice and must give the same bits, and outputs
// documented as overwritten start as NaN while accumulated ones start as random values.
// backend_ops_check.h holds the metric; each test says why its tolerance bounds a correct op.
//
// This file: the dense layer's ops (linear family, rmsnorm, rope, attention). The elementwise,
// row-move, embedding, loss and optimizer ops are in test_backend_ops_pointwise.cpp, the
// mixture-of-experts ops in test_backend_ops_moe.cpp; test_profiling_backend.cpp checks the
// ProfilingBackend decorator against the backend it wraps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "backend_ops_check.h"
#include "ops/attention.h"
#include "ops/gemm.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"

namespace flywheel::testing {
namespace {

struct LinearShape {
  int64_t n, in, out;
};
constexpr LinearShape kLinearShapes[] = {{1, 1, 1}, {1, 17, 5}, {3, 16, 16}, {7, 33, 19},
                                         {64, 100, 48}, {5, 300, 1}, {130, 257, 65}};

// The kernel / weight dtype pairs the interface allows for the forward products.
struct LinearVariant {
  LinearKernel kernel;
  DType dtype;
  const char* name;
};
constexpr LinearVariant kLinearVariants[] = {{LinearKernel::kBlas, DType::kF32, "blas/f32"},
                                             {LinearKernel::kInvariant, DType::kF32, "invariant/f32"},
                                             {LinearKernel::kInvariant, DType::kBF16, "invariant/bf16"}};

std::string linear_case(const LinearShape& s) {
  return "n " + std::to_string(s.n) + ", in " + std::to_string(s.in) + ", out " + std::to_string(s.out);
}

// y = x W^T in double; on magnitudes (|x|, |W|) it gives sum_k |x_k w_k|, the scale of dot_tolerance.
Doubles reference_linear(const Doubles& x, const Doubles& w, const LinearShape& s) {
  Doubles y(static_cast<size_t>(s.n * s.out));
  ops::linear_forward<double>(x.data(), w.data(), y.data(), s.n, s.in, s.out);
  return y;
}

Doubles plus(Doubles a, const Doubles& b) {
  for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
  return a;
}

// Tolerances: y is an in-term dot product, dot_tolerance(in) of sum |x_k w_k|. The residual adds
// one more term (|r| joins the scale). kInvariant promises more than accuracy: a row's bits do not
// depend on the batch, and bf16 weights give the bits of fp32 weights holding the rounded values.
TEST(BackendOps, Linear) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kLinearShapes); ++c) {
      const LinearShape s = kLinearShapes[c];
      const Floats x = random_floats(s.n * s.in, 10 * c + 1);
      const Floats residual = random_floats(s.n * s.out, 10 * c + 2);
      for (const LinearVariant& v : kLinearVariants) {
        SCOPED_TRACE(linear_case(s) + ", " + v.name);
        const Weight w = make_weight(random_floats(s.out * s.in, 10 * c + 3), v.dtype, {s.out, s.in});
        const Floats y = run_twice("linear", [&] {
          Floats y = garbage(s.n * s.out);
          be.linear(v.kernel, x.data(), w.tensor, y.data(), s.n, s.in, s.out);
          return y;
        });
        const Doubles ref = reference_linear(widen(x), widen(w.values), s);
        const Doubles scale = reference_linear(magnitudes(x), magnitudes(w.values), s);
        expect_near(std::string("linear ") + v.name, y, ref, scale, dot_tolerance(s.in));

        const Floats yr = run_twice("linear_residual", [&] {
          Floats y = garbage(s.n * s.out);
          be.linear_residual(v.kernel, x.data(), w.tensor, residual.data(), y.data(), s.n, s.in, s.out);
          return y;
        });
        expect_near(std::string("linear_residual ") + v.name, yr, plus(ref, widen(residual)),
                    plus(scale, magnitudes(residual)), dot_tolerance(s.in + 1));
        if (v.kernel != LinearKernel::kInvariant) continue;

        // Batch invariance: the last row computed alone has the bits it had in the batch.
        Floats last(static_cast<size_t>(s.out));
        be.linear(v.kernel, x.data() + (s.n - 1) * s.in, w.tensor, last.data(), 1, s.in, s.out);
        EXPECT_TRUE(same_bits(last, Floats(y.end() - s.out, y.end()))) << "invariant row depends on the batch";
        if (v.dtype != DType::kBF16) continue;
        const Weight widened = make_weight(w.values, DType::kF32, {s.out, s.in});
        Floats y32(y.size());
        be.linear(v.kernel, x.data(), widened.tensor, y32.data(), s.n, s.in, s.out);
        EXPECT_TRUE(same_bits(y, y32)) << "bf16 weights differ from their fp32 widening";
      }
    }
  });
}

// dx = dy W is an out-term dot product (+1 term with accumulate_dx); dW += dy^T x sums n terms onto
// the previous dW (+1). Both compared with dot_tolerance over the sum of magnitudes.
TEST(BackendOps, LinearBackward) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kLinearShapes); ++c) {
      const LinearShape s = kLinearShapes[c];
      SCOPED_TRACE(linear_case(s));
      const Floats x = random_floats(s.n * s.in, 10 * c + 1), w = random_floats(s.out * s.in, 10 * c + 2);
      const Floats dy = random_floats(s.n * s.out, 10 * c + 3), dx0 = random_floats(s.n * s.in, 10 * c + 4);
      const Floats dw0 = random_floats(s.out * s.in, 10 * c + 5);
      for (const bool accumulate : {false, true}) {
        const auto [dx, dw] = run_twice("linear_backward", [&] {
          Floats dx = accumulate ? dx0 : garbage(s.n * s.in), dw = dw0;
          be.linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), s.n, s.in, s.out, accumulate);
          return std::tuple(dx, dw);
        });
        // Reference and scale from the double op: on widened inputs, and on their magnitudes.
        auto backward = [&](auto convert) {
          Doubles rx = accumulate ? convert(dx0) : Doubles(dx0.size(), 0.0), rw = convert(dw0);
          ops::linear_backward<double>(convert(x).data(), convert(w).data(), convert(dy).data(), rx.data(),
                                       rw.data(), s.n, s.in, s.out, accumulate);
          return std::pair(rx, rw);
        };
        const auto [ref_dx, ref_dw] = backward(widen);
        const auto [scale_dx, scale_dw] = backward(magnitudes);
        const std::string mode = accumulate ? " (accumulate_dx)" : "";
        expect_near("linear_backward dx" + mode, dx, ref_dx, scale_dx, dot_tolerance(s.out + accumulate));
        expect_near("linear_backward dweight" + mode, dw, ref_dw, scale_dw, dot_tolerance(s.n + 1));
      }
    }
  });
}

struct NormShape {
  int64_t n, d;
};
constexpr NormShape kNormShapes[] = {{1, 1}, {3, 17}, {8, 64}, {5, 333}, {40, 128}};

// Forward: sum x^2 is a d-term sum of positive terms (relative error <= gamma_d), which the sqrt
// halves; / d, + eps, sqrt and 1/ round once each, y = x rstd w twice more: rstd and y are within
// (d/2 + 8) u of their own magnitude.
TEST(BackendOps, RmsNorm) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kNormShapes); ++c) {
      const auto [n, d] = kNormShapes[c];
      const Floats x = random_floats(n * d, 10 * c + 1, -2, 2);
      for (const DType dtype : {DType::kF32, DType::kBF16}) {
        SCOPED_TRACE("n " + std::to_string(n) + ", d " + std::to_string(d) + ", weight " + dtype_name(dtype));
        const Weight w = make_weight(random_floats(d, 10 * c + 2, 0.5, 1.5), dtype, {d});
        const auto [y, rstd] = run_twice("rmsnorm", [&] {
          Floats y = garbage(n * d), rstd = garbage(n);
          be.rmsnorm(x.data(), w.tensor, y.data(), rstd.data(), n, d, 1e-5);
          return std::tuple(y, rstd);
        });
        Doubles ref_y(y.size()), ref_rstd(rstd.size());
        ops::rmsnorm_forward<double>(widen(x).data(), widen(w.values).data(), ref_y.data(), ref_rstd.data(), n, d,
                                     1e-5);
        const double tol = (0.5 * static_cast<double>(d) + 8) * kUnit;
        expect_near("rmsnorm y", y, ref_y, magnitudes(narrow(ref_y)), tol);
        expect_near("rmsnorm rstd", rstd, ref_rstd, ref_rstd, tol);
      }
    }
  });
}

// Inputs x, w, rstd, dy are shared (rstd: the reference forward's, rounded). dx = rstd (dy w - xhat
// mean(dy w xhat)) has a d-term mean: within (d + 8) u of rstd (|dy w| + |xhat| mean|dy w xhat|).
// dweight += sum over rows of dy xhat: an n-term sum onto the old value, plus xhat's rounding.
TEST(BackendOps, RmsNormBackward) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kNormShapes); ++c) {
      const auto [n, d] = kNormShapes[c];
      SCOPED_TRACE("n " + std::to_string(n) + ", d " + std::to_string(d));
      const Floats x = random_floats(n * d, 10 * c + 1, -2, 2), w = random_floats(d, 10 * c + 2, 0.5, 1.5);
      const Floats dy = random_floats(n * d, 10 * c + 3), dw0 = random_floats(d, 10 * c + 4);
      Doubles y(x.size()), rstd64(static_cast<size_t>(n));
      ops::rmsnorm_forward<double>(widen(x).data(), widen(w).data(), y.data(), rstd64.data(), n, d, 1e-5);
      const Floats rstd = narrow(rstd64);
      const auto [dx, dw] = run_twice("rmsnorm_backward", [&] {
        Floats dx = garbage(n * d), dw = dw0;
        be.rmsnorm_backward(x.data(), w.data(), rstd.data(), dy.data(), dx.data(), dw.data(), n, d);
        return std::tuple(dx, dw);
      });
      Doubles ref_dx(dx.size()), ref_dw = widen(dw0);
      ops::rmsnorm_backward<double>(widen(x).data(), widen(w).data(), widen(rstd).data(), widen(dy).data(),
                                    ref_dx.data(), ref_dw.data(), n, d);
      Doubles scale_dx(dx.size()), scale_dw = magnitudes(dw0);
      for (int64_t r = 0; r < n; ++r) {
        double mean_abs = 0;  // mean |dy w xhat| of the row
        for (int64_t i = 0; i < d; ++i)
          mean_abs += std::fabs(double(dy[r * d + i]) * w[i] * x[r * d + i] * rstd[r]) / static_cast<double>(d);
        for (int64_t i = 0; i < d; ++i) {
          const double xhat = std::fabs(double(x[r * d + i]) * rstd[r]);
          scale_dx[r * d + i] = rstd[r] * (std::fabs(double(dy[r * d + i]) * w[i]) + xhat * mean_abs);
          scale_dw[i] += std::fabs(dy[r * d + i]) * xhat;
        }
      }
      expect_near("rmsnorm_backward dx", dx, ref_dx, scale_dx, (static_cast<double>(d) + 8) * kUnit);
      expect_near("rmsnorm_backward dweight", dw, ref_dw, scale_dw, dot_tolerance(n + 2));
    }
  });
}

// x' = x_lo cos - x_hi sin: the fp32 table rounds cos and sin (u each), the two products and the
// difference round once each, so the error is within 4u of |x_lo cos| + |x_hi sin|.
TEST(BackendOps, Rope) {
  struct Case {
    int64_t rows, heads, head_dim;
  };
  constexpr int64_t kMaxPositions = 300;
  for_each_backend([](Backend& be) {
    for (const Case s : {Case{1, 1, 2}, Case{5, 3, 8}, Case{17, 4, 64}, Case{33, 2, 6}}) {
      const ops::RopeTable<float> table(s.head_dim, kMaxPositions, 10000.0);
      const ops::RopeTable<double> table64(s.head_dim, kMaxPositions, 10000.0);
      const int64_t n = s.rows * s.heads * s.head_dim, half = s.head_dim / 2;
      const Floats x = random_floats(n, s.rows + 1);
      const std::vector<int64_t> positions = random_ints<int64_t>(s.rows, s.rows + 2, kMaxPositions);
      for (const bool inverse : {false, true}) {
        SCOPED_TRACE("rows " + std::to_string(s.rows) + ", head_dim " + std::to_string(s.head_dim) +
                     (inverse ? ", inverse" : ""));
        const Floats got = run_twice("rope", [&] {
          Floats y = x;
          be.rope(table, y.data(), s.rows, s.heads, positions.data(), inverse);
          return y;
        });
        Doubles ref = widen(x), scale(x.size());
        ops::rope_apply_at<double>(table64, ref.data(), 1, s.rows, s.heads, positions.data(), inverse);
        for (int64_t v = 0; v < n / s.head_dim; ++v)
          for (int64_t j = 0; j < half; ++j) {
            const size_t at = positions[v / s.heads] * half + j, lo = v * s.head_dim + j, hi = lo + half;
            const double cos = std::fabs(table64.cos[at]), sin = std::fabs(table64.sin[at]);
            scale[lo] = std::fabs(x[lo]) * cos + std::fabs(x[hi]) * sin;
            scale[hi] = std::fabs(x[hi]) * cos + std::fabs(x[lo]) * sin;
          }
        expect_near(inverse ? "rope inverse" : "rope", got, ref, scale, 4 * kUnit);
      }
    }
  });
}

// Shapes: one token, grouped queries, two 64-query tiles, and context-parallel calls (queries at an
// offset; keys past the last query, whose dk/dv must be exact zeros). Odd head_dims included.
const ops::AttentionShape kAttentionShapes[] = {
    {.batch = 1, .seq = 1, .n_heads = 1, .n_kv_heads = 1, .head_dim = 1},
    {.batch = 2, .seq = 17, .n_heads = 4, .n_kv_heads = 2, .head_dim = 24},
    {.batch = 1, .seq = 70, .n_heads = 2, .n_kv_heads = 2, .head_dim = 64},
    {.batch = 1, .seq = 33, .n_heads = 3, .n_kv_heads = 1, .head_dim = 5, .seq_k = 100, .q_offset = 67},
    {.batch = 2, .seq = 40, .n_heads = 2, .n_kv_heads = 1, .head_dim = 8, .seq_k = 130, .q_offset = 20},
};

struct AttentionInputs {
  explicit AttentionInputs(const ops::AttentionShape& s, uint64_t seed)
      : seq_k(s.seq_k ? s.seq_k : s.seq),
        q(random_floats(s.batch * s.seq * s.n_heads * s.head_dim, seed + 1, -2, 2)),
        k(random_floats(s.batch * seq_k * s.n_kv_heads * s.head_dim, seed + 2, -2, 2)),
        v(random_floats(s.batch * seq_k * s.n_kv_heads * s.head_dim, seed + 3)),
        dout(random_floats(s.batch * s.seq * s.n_heads * s.head_dim, seed + 4)) {}
  int64_t seq_k;
  Floats q, k, v, dout;
};

std::string attention_case(const ops::AttentionShape& s) {
  return "batch " + std::to_string(s.batch) + ", seq " + std::to_string(s.seq) + ", heads " +
         std::to_string(s.n_heads) + "/" + std::to_string(s.n_kv_heads) + ", head_dim " + std::to_string(s.head_dim) +
         ", seq_k " + std::to_string(s.seq_k) + ", q_offset " + std::to_string(s.q_offset);
}

// max over (query, key) pairs of scale * sum_d |q_d k_d|, scale = 1 / sqrt(head_dim).
double max_score_magnitude(const ops::AttentionShape& s, const AttentionInputs& in) {
  const int64_t hd = s.head_dim, group = s.n_heads / s.n_kv_heads;
  double worst = 0;
  for (int64_t b = 0; b < s.batch; ++b)
    for (int64_t h = 0; h < s.n_heads; ++h)
      for (int64_t i = 0; i < s.seq; ++i)
        for (int64_t j = 0; j < in.seq_k; ++j) {
          const float* q = in.q.data() + ((b * s.seq + i) * s.n_heads + h) * hd;
          const float* k = in.k.data() + ((b * in.seq_k + j) * s.n_kv_heads + h / group) * hd;
          double sum = 0;
          for (int64_t d = 0; d < hd; ++d) sum += std::fabs(double(q[d]) * k[d]);
          worst = std::max(worst, sum);
        }
  return worst / std::sqrt(static_cast<double>(hd));
}

// The error budget of a softmax over scores, in units of u (normwise, per tensor). A score
// s = scale q.k is a (head_dim + 1)-rounding dot, off by up to (head_dim + 1) u scale sum|q k|;
// exp turns that into a relative error of each probability, and the normalisation leaves the
// difference of two such errors; normalising sums up to seq_k terms; a few more roundings (exp,
// the online-softmax rescales, the final divide).
double softmax_budget(const ops::AttentionShape& s, const AttentionInputs& in) {
  const double score = static_cast<double>(s.head_dim + 1) * max_score_magnitude(s, in);
  return 2 * score + static_cast<double>(in.seq_k) + 16;
}

double max_magnitude(const Doubles& x) {
  double m = 0;
  for (double v : x) m = std::max(m, std::fabs(v));
  return m;
}

// out = P V is a convex combination of v rows: its error is the budget times max|v| (out, normwise);
// lse = m + log sum exp carries the budget as an absolute error.
TEST(BackendOps, Attention) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kAttentionShapes); ++c) {
      const ops::AttentionShape& s = kAttentionShapes[c];
      SCOPED_TRACE(attention_case(s));
      const AttentionInputs in(s, 10 * c);
      const auto [out, lse] = run_twice("attention", [&] {
        Floats out = garbage(in.dout.size()), lse = garbage(s.batch * s.n_heads * s.seq);
        be.attention(s, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
        return std::tuple(out, lse);
      });
      Doubles ref_out(out.size()), ref_lse(lse.size());
      ops::attention_forward<double>(s, widen(in.q).data(), widen(in.k).data(), widen(in.v).data(), ref_out.data(),
                                     ref_lse.data());
      const double tol = softmax_budget(s, in) * kUnit;
      expect_near("attention out", out, ref_out, max_magnitude(widen(in.v)), tol);
      expect_near("attention lse", lse, ref_lse, 1.0, tol);
    }
  });
}

// Inputs shared with the reference, out and lse included (the reference forward's, rounded).
// dv sums probabilities times dout over queries, dq and dk sum dS = P (dP - D) times k or q over
// up to seq_k / seq terms, where dP and D are head_dim-term products: twice the softmax budget plus
// those lengths, normwise against the largest gradient of the call (dq, dk, dv share the scale
// |dout| |v| |q|: one gradient may vanish, as dq and dk do for a single key).
TEST(BackendOps, AttentionBackward) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kAttentionShapes); ++c) {
      const ops::AttentionShape& s = kAttentionShapes[c];
      SCOPED_TRACE(attention_case(s));
      const AttentionInputs in(s, 10 * c);
      const Doubles q = widen(in.q), k = widen(in.k), v = widen(in.v), dout = widen(in.dout);
      Doubles out64(in.dout.size()), lse64(static_cast<size_t>(s.batch * s.n_heads * s.seq));
      ops::attention_forward<double>(s, q.data(), k.data(), v.data(), out64.data(), lse64.data());
      const Floats out = narrow(out64), lse = narrow(lse64);
      const auto [dq, dk, dv] = run_twice("attention_backward", [&] {
        Floats dq = garbage(in.q.size()), dk = garbage(in.k.size()), dv = garbage(in.v.size());
        be.attention_backward(s, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(), in.dout.data(),
                              dq.data(), dk.data(), dv.data());
        return std::tuple(dq, dk, dv);
      });
      Doubles ref_dq(dq.size()), ref_dk(dk.size()), ref_dv(dv.size());
      ops::attention_backward<double>(s, q.data(), k.data(), v.data(), widen(out).data(), widen(lse).data(),
                                      dout.data(), ref_dq.data(), ref_dk.data(), ref_dv.data());
      const double scale = std::max({max_magnitude(ref_dq), max_magnitude(ref_dk), max_magnitude(ref_dv)});
      const double tol =
          (2 * softmax_budget(s, in) + static_cast<double>(s.head_dim + in.seq_k + s.seq)) * kUnit;
      expect_near("attention_backward dq", dq, ref_dq, scale, tol);
      expect_near("attention_backward dk", dk, ref_dk, scale, tol);
      expect_near("attention_backward dv", dv, ref_dv, scale, tol);
    }
  });
}

}  // namespace
}  // namespace flywheel::testing
