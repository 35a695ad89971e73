// The finite-difference harness of the op-gradient tests (test_op_gradients*.cpp).
//
// Method: for an op out = f(x) and a fixed random upstream gradient R, the scalar
// L(x) = sum(out(x) * R) has dL/dx = backward(R); that analytic gradient is compared with
// (L(x + h e_i) - L(x - h e_i)) / 2h for EVERY element i, all in double.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <iomanip>
#include <random>
#include <vector>

namespace flywheel::op_check {

using Vec = std::vector<double>;

// Central-difference step and tolerance. With h = 1e-6 the truncation error is
// h^2 |f'''| / 6 ~ 1e-13 and the rounding error is ~eps |L| / h ~ 2e-16 * 10 / 1e-6 ~ 2e-9 (these
// losses are O(1..10)), so against O(1) gradients a correct backward agrees to ~1e-9; 1e-6 leaves a
// wide margin, while a real bug (a sign, a missing term, a wrong factor) is off by 1e-2 or more.
constexpr double kStep = 1e-6;
constexpr double kGradTol = 1e-6;
// float carries eps ~6e-8; these ops reduce at most ~16 terms of O(1) size, so the float path sits
// within ~1e-6 of the double path. 1e-5 tolerates that and catches float-only template bugs.
constexpr double kFloatTol = 1e-5;

inline double relative_error(double a, double b) {
  return std::abs(a - b) / std::max({1.0, std::abs(a), std::abs(b)});
}

inline Vec random_vector(int64_t n, std::mt19937& rng, double lo = -1.0, double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(static_cast<size_t>(n));
  for (double& x : v) x = dist(rng);
  return v;
}

template <typename T>
std::vector<T> cast(const Vec& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <typename T>
Vec as_double(const std::vector<T>& v) {
  return Vec(v.begin(), v.end());
}

inline double dot(const Vec& a, const Vec& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

inline Vec minus(const Vec& a, const Vec& b) {
  Vec d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return d;
}

// Central differences of `loss` at every element of x against `analytic`. Returns one result (the
// mismatch count and the worst element) so a broken backward prints one line, not hundreds.
inline ::testing::AssertionResult matches_finite_differences(const std::function<double(const Vec&)>& loss, Vec x,
                                                    const Vec& analytic) {
  if (analytic.size() != x.size())
    return ::testing::AssertionFailure() << "gradient has " << analytic.size() << " elements, input " << x.size();
  size_t bad = 0, worst = 0;
  double worst_error = 0, worst_numeric = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + kStep;
    const double up = loss(x);
    x[i] = x0 - kStep;
    const double down = loss(x);
    x[i] = x0;
    const double numeric = (up - down) / (2 * kStep);
    const double error = relative_error(analytic[i], numeric);
    if (error > kGradTol) ++bad;
    if (error >= worst_error) worst_error = error, worst = i, worst_numeric = numeric;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << std::setprecision(10) << bad << " of " << x.size()
                                     << " elements differ; worst [" << worst << "]: analytic " << analytic[worst]
                                     << " vs finite difference " << worst_numeric << " (relative error "
                                     << worst_error << ")";
}

// `run(tag)` runs one op family in type decltype(tag) from the same double inputs and returns all
// of its outputs and gradients as double; float and double must agree to kFloatTol.
template <typename Run>
void expect_float_agrees_with_double(Run run) {
  const std::vector<Vec> in_float = run(float{}), in_double = run(double{});
  ASSERT_EQ(in_float.size(), in_double.size());
  for (size_t t = 0; t < in_double.size(); ++t) {
    ASSERT_EQ(in_float[t].size(), in_double[t].size()) << "output " << t;
    for (size_t i = 0; i < in_double[t].size(); ++i)
      ASSERT_LE(relative_error(in_float[t][i], in_double[t][i]), kFloatTol)
          << "output " << t << " [" << i << "]: float " << in_float[t][i] << " vs double " << in_double[t][i];
  }
}

}  // namespace flywheel::op_check
