// ProfilingBackend (backend/profiling_backend.h) over each backend of the build: the bits of the
// wrapped backend, one call counted per forwarded call, model FLOPs tallied for the matrix ops,
// listed slowest first, cleared by reset().
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <vector>

#include "backend/profiling_backend.h"
#include "backend_ops_check.h"

namespace flywheel::testing {
namespace {

// Runs a linear, an rmsnorm and a cross-entropy (with its gradient) on `be`; returns their outputs.
std::tuple<Floats, Floats, Floats, double> run_some_ops(Backend& be, int linear_calls) {
  const int64_t n = 5, in = 33, out = 19;
  const Floats x = random_floats(n * in, 1), w = random_floats(out * in, 2), gain = random_floats(in, 3, 0.5, 1.5);
  const Tensor weight = Tensor::view(w.data(), {out, in}), norm_weight = Tensor::view(gain.data(), {in});
  Floats y = garbage(n * out), normed = garbage(n * in), rstd = garbage(n);
  for (int i = 0; i < linear_calls; ++i) be.linear(LinearKernel::kBlas, x.data(), weight, y.data(), n, in, out);
  be.rmsnorm(x.data(), norm_weight, normed.data(), rstd.data(), n, in, 1e-6);
  const std::vector<int32_t> targets = random_ints<int32_t>(n, 4, out);
  const Floats weights(n, 1.0f);
  Floats logits = y;
  const double loss = be.cross_entropy(logits.data(), targets.data(), weights.data(), n, out, true, nullptr);
  return {y, normed, logits, loss};
}

TEST(BackendOps, ProfilingBackendForwardsAndCounts) {
  for_each_backend([](Backend& be) {
    ProfilingBackend profiling(be);
    EXPECT_EQ(profiling.name(), "profiling(" + be.name() + ")");
    EXPECT_EQ(profiling.device(), be.device());
    EXPECT_TRUE(same_bits(run_some_ops(profiling, 3), run_some_ops(be, 3))) << "the profiled run differs";

    const std::vector<ProfilingBackend::OpTime> times = profiling.times();
    ASSERT_EQ(times.size(), 3u);
    auto find = [&](const std::string& op) {
      const auto it = std::find_if(times.begin(), times.end(), [&](const auto& t) { return t.op == op; });
      return it == times.end() ? ProfilingBackend::OpTime{op, -1, 0, -1} : *it;
    };
    EXPECT_EQ(find("linear").calls, 3);
    EXPECT_EQ(find("rmsnorm").calls, 1);
    EXPECT_EQ(find("cross_entropy").calls, 1);
    // Model FLOPs: 2 n in out per linear (n = 5, in = 33, out = 19), none for the other ops.
    EXPECT_EQ(find("linear").flops, 3 * 2.0 * 5 * 33 * 19);
    EXPECT_EQ(find("rmsnorm").flops, 0.0);
    EXPECT_EQ(find("cross_entropy").flops, 0.0);
    double total = 0;
    for (size_t i = 0; i < times.size(); ++i) {
      total += times[i].seconds;
      if (i > 0) {
        EXPECT_GE(times[i - 1].seconds, times[i].seconds) << "times() is not slowest first";
      }
    }
    EXPECT_GT(total, 0.0);

    profiling.reset();
    EXPECT_TRUE(profiling.times().empty());
    run_some_ops(profiling, 1);
    EXPECT_EQ(profiling.times().size(), 3u);
  });
}

// The FLOPs of linear_backward (dx and dW: two products) and of causal attention with keys before
// the queries (q_offset 2, as a context-parallel rank or a decode step calls it).
TEST(BackendOps, ProfilingBackendCountsMatrixFlops) {
  for_each_backend([](Backend& be) {
    ProfilingBackend profiling(be);
    const int64_t n = 4, in = 6, out = 3;
    const Floats x = random_floats(n * in, 1), w = random_floats(out * in, 2), dy = random_floats(n * out, 3);
    Floats dx = garbage(n * in), dw(static_cast<size_t>(out * in), 0.0f);
    profiling.linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), n, in, out, false);

    const ops::AttentionShape shape{2, 3, 2, 1, 4, 5, 2};  // batch, seq, heads, kv heads, head_dim, seq_k, q_offset
    const int64_t q_size = 2 * 3 * 2 * 4, kv_size = 2 * 5 * 1 * 4;
    const Floats q = random_floats(q_size, 4), k = random_floats(kv_size, 5), v = random_floats(kv_size, 6);
    Floats o = garbage(q_size), lse = garbage(2 * 2 * 3);
    profiling.attention(shape, q.data(), k.data(), v.data(), o.data(), lse.data());

    // Queries at positions 2, 3, 4 see 3 + 4 + 5 = 12 keys; 4 FLOPs per head_dim element of a pair.
    const double attention = 4.0 * 2 * 2 * 4 * 12;
    const std::vector<ProfilingBackend::OpTime> times = profiling.times();
    ASSERT_EQ(times.size(), 2u);
    for (const ProfilingBackend::OpTime& t : times) {
      EXPECT_EQ(t.flops, t.op == "attention" ? attention : 2 * 2.0 * n * in * out) << t.op;
    }
  });
}

}  // namespace
}  // namespace flywheel::testing
