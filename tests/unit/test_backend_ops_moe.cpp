// Cross-check of every compute backend against the float64 oracles of ops/, continued (the method
// is described in test_backend_ops.cpp): the mixture-of-experts ops.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <tuple>

#include "backend_ops_check.h"
#include "ops/moe_router.h"
#include "ops/moe_slots.h"

namespace flywheel::testing {
namespace {

struct RouterShape {
  int64_t n, experts, top_k;
};
constexpr RouterShape kRouterShapes[] = {{1, 1, 1}, {7, 8, 2}, {33, 16, 4}, {50, 64, 8}, {5, 3, 3}};

std::string router_case(const RouterShape& s, bool normalize) {
  return "n " + std::to_string(s.n) + ", experts " + std::to_string(s.experts) + ", top_k " +
         std::to_string(s.top_k) + (normalize ? ", normalize" : "");
}

// Logits in [-3, 3]; every third row repeats its first logit, an exact tie that the documented rule
// (lower index first) must break the same way on every backend.
Floats router_logits(const RouterShape& s, uint64_t seed) {
  Floats logits = random_floats(s.n * s.experts, seed, -3, 3);
  for (int64_t r = 0; r < s.n && s.experts > 1; r += 3) logits[r * s.experts + 1] = logits[r * s.experts];
  return logits;
}

// Whether two of the probabilities that decide row r's selection (its k + 1 largest) are distinct
// but within `tol` relative of each other: rounding may then order them either way.
bool near_tie(const Doubles& probs, int64_t r, const RouterShape& s, double tol) {
  Doubles row(probs.begin() + r * s.experts, probs.begin() + (r + 1) * s.experts);
  std::sort(row.begin(), row.end(), std::greater<>());
  for (int64_t j = 0; j + 1 < std::min(s.top_k + 1, s.experts); ++j)
    if (row[j] != row[j + 1] && row[j] - row[j + 1] <= tol * row[j]) return true;
  return false;
}

// p = exp(x - max) / sum: a 1-ulp exp of an argument rounded within 6u (|x - max| <= 6), an E-term
// sum, a divide: within (E + 12) u of p. The weights add a k-term sum and a divide: (E + k + 14) u.
// Expert ids are integers: exact wherever the reference has no near-tie.
TEST(BackendOps, Router) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kRouterShapes); ++c)
      for (const bool normalize : {false, true}) {
        const RouterShape s = kRouterShapes[c];
        SCOPED_TRACE(router_case(s, normalize));
        const Floats logits = router_logits(s, c + 1);
        const auto [probs, expert, weight] = run_twice("router", [&] {
          Floats probs = garbage(s.n * s.experts), weight = garbage(s.n * s.top_k);
          std::vector<int32_t> expert(static_cast<size_t>(s.n * s.top_k), -7);
          be.router(logits.data(), probs.data(), expert.data(), weight.data(), s.n, s.experts, s.top_k, normalize);
          return std::tuple(probs, expert, weight);
        });
        Doubles ref_probs(probs.size()), ref_weight(weight.size());
        std::vector<int32_t> ref_expert(expert.size());
        ops::router_forward<double>(widen(logits).data(), ref_probs.data(), ref_expert.data(), ref_weight.data(), s.n,
                                    s.experts, s.top_k, normalize);
        const double tol_probs = static_cast<double>(s.experts + 12) * kUnit;
        expect_near("router probs", probs, ref_probs, magnitudes(narrow(ref_probs)), tol_probs);
        expect_near("router weight", weight, ref_weight, magnitudes(narrow(ref_weight)),
                    static_cast<double>(s.experts + s.top_k + 14) * kUnit);
        int64_t checked = 0;
        for (int64_t r = 0; r < s.n; ++r) {
          if (near_tie(ref_probs, r, s, 4 * tol_probs)) continue;
          ++checked;
          for (int64_t j = 0; j < s.top_k; ++j)
            EXPECT_EQ(expert[r * s.top_k + j], ref_expert[r * s.top_k + j]) << "row " << r << ", choice " << j;
        }
        EXPECT_GE(2 * checked, s.n) << "too many near-ties to check the expert ids";
      }
  });
}

// Inputs (probs, ids, weights: the reference forward's, rounded) are shared. dp_e = extra_e +
// (dw_j - dw.w) / S for the j-th choice e is within (2k + 4) u of |dp|_e = |extra_e| +
// (|dw_j| + sum |dw_i w_i|) / S (k-term sums, a divide, two adds); dlogit_e = p_e (dp_e - dp.p)
// adds an E-term dot: within (E + 2k + 8) u of p_e (|dp|_e + sum_i |dp|_i p_i).
TEST(BackendOps, RouterBackward) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kRouterShapes); ++c)
      for (const bool normalize : {false, true})
        for (const bool extra : {false, true}) {
          const RouterShape s = kRouterShapes[c];
          const int64_t E = s.experts, k = s.top_k;
          SCOPED_TRACE(router_case(s, normalize) + (extra ? ", dprobs_extra" : ""));
          Doubles probs64(static_cast<size_t>(s.n * E)), weight64(static_cast<size_t>(s.n * k));
          std::vector<int32_t> expert(weight64.size());
          ops::router_forward<double>(widen(router_logits(s, c + 1)).data(), probs64.data(), expert.data(),
                                      weight64.data(), s.n, E, k, normalize);
          const Floats probs = narrow(probs64), weight = narrow(weight64);
          const Floats dweight = random_floats(s.n * k, c + 2), dprobs_extra = random_floats(s.n * E, c + 3);
          const float* extra_data = extra ? dprobs_extra.data() : nullptr;
          const Floats dlogits = run_twice("router_backward", [&] {
            Floats dlogits = garbage(s.n * E);
            be.router_backward(probs.data(), expert.data(), weight.data(), dweight.data(), extra_data, dlogits.data(),
                               s.n, E, k, normalize);
            return dlogits;
          });
          Doubles ref(dlogits.size()), scale(dlogits.size());
          const Doubles extra64 = widen(dprobs_extra);
          ops::router_backward<double>(widen(probs).data(), expert.data(), widen(weight).data(),
                                       widen(dweight).data(), extra ? extra64.data() : nullptr, ref.data(), s.n, E,
                                       k, normalize);
          for (int64_t r = 0; r < s.n; ++r) {
            Doubles dp(static_cast<size_t>(E));  // |dp|_e of the row
            double selected = 0, dw_dot_w = 0, dp_dot_p = 0;
            for (int64_t j = 0; j < k; ++j) {
              selected += probs[r * E + expert[r * k + j]];
              dw_dot_w += std::fabs(double(dweight[r * k + j]) * weight[r * k + j]);
            }
            for (int64_t e = 0; e < E; ++e) dp[e] = extra ? std::fabs(dprobs_extra[r * E + e]) : 0.0;
            for (int64_t j = 0; j < k; ++j)
              dp[expert[r * k + j]] +=
                  normalize ? (std::fabs(dweight[r * k + j]) + dw_dot_w) / selected : std::fabs(dweight[r * k + j]);
            for (int64_t e = 0; e < E; ++e) dp_dot_p += dp[e] * probs[r * E + e];
            for (int64_t e = 0; e < E; ++e) scale[r * E + e] = probs[r * E + e] * (dp[e] + dp_dot_p);
          }
          expect_near("router_backward dlogits", dlogits, ref, scale, static_cast<double>(E + 2 * k + 8) * kUnit);
        }
  });
}

struct SlotShape {
  int64_t n, k, d;
};
constexpr SlotShape kSlotShapes[] = {{1, 1, 1}, {5, 2, 17}, {33, 4, 64}, {3, 8, 5}};

std::string slot_case(const SlotShape& s) {
  return "n " + std::to_string(s.n) + ", k " + std::to_string(s.k) + ", d " + std::to_string(s.d);
}

// y += sum_j w_j slot_j: k products summed onto y, dot_tolerance(k + 1) of the sum of magnitudes.
// Backward: dslots = w dy is one product (u); dweight = dy . slot a d-term dot.
TEST(BackendOps, CombineSlots) {
  for_each_backend([](Backend& be) {
    for (size_t c = 0; c < std::size(kSlotShapes); ++c) {
      const SlotShape s = kSlotShapes[c];
      SCOPED_TRACE(slot_case(s));
      const Floats slots = random_floats(s.n * s.k * s.d, c + 1), weight = random_floats(s.n * s.k, c + 2, 0, 1);
      const Floats y0 = random_floats(s.n * s.d, c + 3), dy = random_floats(s.n * s.d, c + 4);
      const Floats ones(weight.size(), 1.0f);
      for (const bool weighted : {true, false}) {
        const Floats y = run_twice("combine_slots", [&] {
          Floats y = y0;
          be.combine_slots(slots.data(), weighted ? weight.data() : nullptr, y.data(), s.n, s.k, s.d);
          return y;
        });
        const Floats& w = weighted ? weight : ones;
        Doubles ref = widen(y0), scale = magnitudes(y0);
        ops::combine_slots<double>(widen(slots).data(), widen(w).data(), ref.data(), s.n, s.k, s.d);
        ops::combine_slots<double>(magnitudes(slots).data(), magnitudes(w).data(), scale.data(), s.n, s.k, s.d);
        expect_near(weighted ? "combine_slots" : "combine_slots unweighted", y, ref, scale, dot_tolerance(s.k + 1));
      }

      const auto [dslots, dweight] = run_twice("combine_slots_backward", [&] {
        Floats dslots = garbage(slots.size()), dweight = garbage(weight.size());
        be.combine_slots_backward(slots.data(), weight.data(), dy.data(), dslots.data(), dweight.data(), s.n, s.k,
                                  s.d);
        return std::tuple(dslots, dweight);
      });
      auto backward = [&](auto convert) {
        Doubles ds(slots.size()), dw(weight.size());
        ops::combine_slots_backward<double>(convert(slots).data(), convert(weight).data(), convert(dy).data(),
                                            ds.data(), dw.data(), s.n, s.k, s.d);
        return std::pair(ds, dw);
      };
      const auto [ref_dslots, ref_dweight] = backward(widen);
      const auto [scale_dslots, scale_dweight] = backward(magnitudes);
      expect_near("combine_slots_backward dslots", dslots, ref_dslots, scale_dslots, 1.01 * kUnit);
      expect_near("combine_slots_backward dweight", dweight, ref_dweight, scale_dweight, dot_tolerance(s.d));
    }
  });
}

// Counts and n are exact; the probability sums add n fp32 values (exact in double) in double:
// within 2 n 2^-53 of the reference's sum, whatever order either takes.
TEST(BackendOps, RoutingStatistics) {
  for_each_backend([](Backend& be) {
    for (const RouterShape s : kRouterShapes) {
      SCOPED_TRACE(router_case(s, false));
      const int64_t E = s.experts;
      const std::vector<int32_t> expert = random_ints<int32_t>(s.n * s.top_k, E + 1, E);
      const Floats probs = random_floats(s.n * E, E + 2, 0, 1);
      const Doubles stats = run_twice("routing_statistics", [&] {
        Doubles stats(static_cast<size_t>(2 * E + 1), std::nan(""));
        be.routing_statistics(expert.data(), probs.data(), s.n, E, s.top_k, stats.data());
        return stats;
      });
      Doubles ref(stats.size()), scale(stats.size(), 0.0);  // scale 0: counts and n must match exactly
      ops::routing_statistics<double>(expert.data(), widen(probs).data(), s.n, E, s.top_k, ref.data());
      std::copy(ref.begin() + E, ref.begin() + 2 * E, scale.begin() + E);
      expect_near("routing_statistics", stats, ref, scale, 2.02 * static_cast<double>(s.n) * kUnit64);
    }
  });
}

}  // namespace
}  // namespace flywheel::testing
