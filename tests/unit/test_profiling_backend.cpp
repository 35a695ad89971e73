// ProfilingBackend (backend/profiling_backend.h) over each backend of the build: the bits of the
// wrapped backend, one call counted per forwarded call, listed slowest first, cleared by reset().
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
    auto calls_of = [&](const std::string& op) {
      const auto it = std::find_if(times.begin(), times.end(), [&](const auto& t) { return t.op == op; });
      return it == times.end() ? int64_t{-1} : it->calls;
    };
    EXPECT_EQ(calls_of("linear"), 3);
    EXPECT_EQ(calls_of("rmsnorm"), 1);
    EXPECT_EQ(calls_of("cross_entropy"), 1);
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

}  // namespace
}  // namespace flywheel::testing
