// Helpers of the backend cross-check (test_backend_ops*.cpp): seeded random inputs, widening to
// double for the float64 oracles of ops/, weights in f32 or bf16, and the comparisons.
//
// The comparison metric: error_i = |got_i - ref_i| / scale_i, where scale_i is a magnitude the
// op's rounding error is proportional to (each test says which, and why its tolerance bounds the
// error). The test fails when max_i error_i > tol; a NaN anywhere fails (outputs documented as
// overwritten are pre-filled with NaN, so an element a backend forgets to write shows up).
//
// FLYWHEEL_BACKEND_OPS_REPORT=1 prints every comparison's worst error and tolerance.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/bf16.h"
#include "core/tensor.h"

namespace flywheel::testing {

using Floats = std::vector<float>;
using Doubles = std::vector<double>;

// Unit roundoff: one correctly rounded fp32 (fp64) operation is off by at most this, relative.
constexpr double kUnit = 0x1p-24;
constexpr double kUnit64 = 0x1p-53;

// Higham's bound for a sum of `terms` rounded products (a dot product), relative to the sum of
// their magnitudes: |fl(sum) - sum| <= gamma_terms * sum |x_i y_i|, gamma_m = m u / (1 - m u) <=
// 1.01 m u here. It holds for every summation order (BLAS blocking, split-K, trees) and for fma, so
// any correct backend passes, while a dropped or doubled term errs by ~1/terms of that sum, far
// more than terms * u for terms < 2^12. The worst case is used, not the typical sqrt(terms) * u: a
// cross-check that fails now and then on a correct kernel would be ignored.
inline double dot_tolerance(int64_t terms) { return 1.01 * static_cast<double>(terms) * kUnit; }

// Uniform in [lo, hi) from a fixed seed: mt19937_64's output is fixed by the standard and the
// conversion is ours (std::uniform_real_distribution differs between standard libraries).
inline Floats random_floats(int64_t n, uint64_t seed, double lo = -1, double hi = 1) {
  std::mt19937_64 bits(seed);
  Floats out(static_cast<size_t>(n));
  for (float& v : out) v = static_cast<float>(lo + (hi - lo) * static_cast<double>(bits() >> 11) * 0x1p-53);
  return out;
}

// Uniform integers in [0, bound).
template <typename Int>
std::vector<Int> random_ints(int64_t n, uint64_t seed, int64_t bound) {
  std::mt19937_64 bits(seed);
  std::vector<Int> out(static_cast<size_t>(n));
  for (Int& v : out) v = static_cast<Int>(bits() % static_cast<uint64_t>(bound));
  return out;
}

// An output documented as overwritten starts as NaN.
inline Floats garbage(int64_t n) { return Floats(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN()); }

inline Doubles widen(const Floats& x) { return Doubles(x.begin(), x.end()); }
inline Doubles magnitudes(const Floats& x) {
  Doubles out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = std::fabs(static_cast<double>(x[i]));
  return out;
}
inline Floats narrow(const Doubles& x) { return Floats(x.begin(), x.end()); }

// A weight the backend reads as a Tensor (f32 or bf16) and the fp32 values it stands for: the
// bf16-rounded ones for bf16, which is what the reference must be computed from.
struct Weight {
  Tensor tensor;
  Floats values;
};
inline Weight make_weight(const Floats& raw, DType dtype, std::vector<int64_t> shape) {
  Weight w{Tensor::empty(dtype, std::move(shape)), raw};
  const int64_t n = static_cast<int64_t>(raw.size());
  if (dtype == DType::kBF16) {
    fp32_to_bf16(raw.data(), w.tensor.data<BFloat16>(), n);
    for (float& v : w.values) v = round_to_bf16(v);
  } else {
    std::memcpy(w.tensor.data<float>(), raw.data(), sizeof(float) * raw.size());
  }
  return w;
}

// Fails (naming `what` and the worst element) when max_i |got_i - ref_i| / scale_i exceeds tol;
// returns that maximum. A zero scale demands an exact match.
template <typename Got>
double expect_near(const std::string& what, const std::vector<Got>& got, const Doubles& ref, const Doubles& scale,
                   double tol) {
  EXPECT_EQ(got.size(), ref.size()) << what;
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    const double diff = std::fabs(static_cast<double>(got[i]) - ref[i]);
    const double error = diff == 0 ? 0 : diff / scale[i];
    if (!(error <= worst)) {  // NaN sticks
      worst = error;
      worst_at = i;
      if (std::isnan(error)) break;
    }
  }
  if (std::getenv("FLYWHEEL_BACKEND_OPS_REPORT"))
    std::printf("[report] %-48s worst %.3g  tol %.3g  (%.2f u of %.1f u)\n", what.c_str(), worst, tol,
                worst / kUnit, tol / kUnit);
  EXPECT_LE(worst, tol) << what << ": element " << worst_at << " is " << static_cast<double>(got[worst_at])
                        << ", the float64 reference " << ref[worst_at] << " (scale " << scale[worst_at] << ")";
  return worst;
}
// The same with one scale for every element (a normwise comparison).
template <typename Got>
double expect_near(const std::string& what, const std::vector<Got>& got, const Doubles& ref, double scale,
                   double tol) {
  return expect_near(what, got, ref, Doubles(ref.size(), scale), tol);
}

// ---- determinism: run twice, compare the bits ------------------------------------------------------

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(T) * a.size()) == 0;
}
inline bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }
template <typename... T>
bool same_bits(const std::tuple<T...>& a, const std::tuple<T...>& b) {
  return [&]<size_t... I>(std::index_sequence<I...>) {
    return (same_bits(std::get<I>(a), std::get<I>(b)) && ...);
  }(std::index_sequence_for<T...>{});
}

// Runs `op` (which sets up its own inputs and outputs and returns the outputs) twice and expects
// bit-identical results: every backend op is deterministic run to run (backend.h). Returns the first.
template <typename Op>
auto run_twice(const std::string& what, Op op) {
  const auto first = op();
  const auto second = op();
  EXPECT_TRUE(same_bits(first, second)) << what << ": two runs on the same inputs differ";
  return first;
}

// Runs `body(backend)` for every backend of the build, naming the backend in every failure.
template <typename Body>
void for_each_backend(Body body) {
  for (Backend* backend : registered_backends()) {
    SCOPED_TRACE("backend " + backend->name());
    body(*backend);
  }
}

}  // namespace flywheel::testing
