// The RL / preference losses (src/rl/): gradients against finite differences, the special cases
// the formulas promise, global normalisation over simulated ranks, group advantages, and one end-to-end check that -dL/dlogp as the model's ce_weight gives dL/dtheta.
//
// Finite differences. evaluate() takes float logps but computes in double, so every logp and old /
// infer / ref logprob is drawn on the grid k * 2^-10 and perturbed by h = 2^-12: logp +- h is then
// exact in float and L(logp +- h) is a double computation. Central differences have truncation
// error h^2 |L'''| / 6 ~ 1e-8 * |L'| (the terms are exp / softplus of O(1) arguments) and rounding
// error ~1e-16 |L| / h ~ 1e-12, while the analytic gradient is returned in float (relative 6e-8). So a
// correct loss agrees to ~1e-7 of the largest gradient; the tolerance 1e-5 of it leaves margin and
// still catches any wrong sign, factor or missing term (errors of order 1e-2 or more).
#include <gtest/gtest.h>

#include <algorithm>
#include <barrier>
#include <cmath>
#include <exception>
#include <random>
#include <thread>

#include "core/error.h"
#include "model/transformer.h"
#include "rl/advantages.h"
#include "train/dpo.h"
#include "train/grpo.h"
#include "train/loss.h"
#include "data/tokenizer.h"

namespace flywheel {
namespace {

constexpr float kGrid = 1.0f / 1024;
constexpr float kStep = 1.0f / 4096;
constexpr double kFdTol = 1e-5;

float grid(double x) { return std::round(x / kGrid) * kGrid; }

// rows x seq tokens, ~70% in the mask, logps on the grid; per-row advantages; every optional field.
LossBatch random_batch(int64_t rows, int64_t seq, std::mt19937& rng, const GrpoConfig& clip = {}) {
  std::uniform_real_distribution<double> u(0, 1);
  LossBatch b;
  b.rows = rows;
  b.seq = seq;
  const int64_t n = rows * seq;
  b.tokens.assign(n, 1);
  b.targets.assign(n, 2);
  b.mask.resize(n);
  for (auto& m : b.mask) m = u(rng) < 0.7 ? 1.0f : 0.0f;
  std::vector<float> row_adv(rows);
  for (auto& a : row_adv) a = static_cast<float>(2 * u(rng) - 1);
  set_row_advantages(b, row_adv);
  b.old_logprob.resize(n);
  b.infer_logprob.resize(n);
  b.ref_logprob.resize(n);
  const double log_lo = std::log(1 - clip.clip_low), log_hi = std::log(1 + clip.clip_high);
  for (int64_t t = 0; t < n; ++t) {
    // old = logp - d with d = log ratio in [-0.5, 0.5], kept 8 steps away from the clip kinks.
    double d = grid(u(rng) - 0.5);
    if (std::abs(d - log_lo) < 8 * kStep || std::abs(d - log_hi) < 8 * kStep) d += 16 * kGrid;
    b.old_logprob[t] = d;  // shifted by logp in random_logp
    b.infer_logprob[t] = grid(u(rng) - 0.5);
    b.ref_logprob[t] = grid(u(rng) - 0.5);
  }
  return b;
}

// logp in [-3, -0.1] on the grid; old / infer / ref become logp - d, old - e, logp + r.
std::vector<float> random_logp(LossBatch& b, std::mt19937& rng) {
  std::uniform_real_distribution<double> u(-3, -0.1);
  std::vector<float> logp(b.mask.size());
  for (size_t t = 0; t < logp.size(); ++t) {
    logp[t] = grid(u(rng));
    b.old_logprob[t] = logp[t] - b.old_logprob[t];
    b.infer_logprob[t] = b.old_logprob[t] - b.infer_logprob[t];
    b.ref_logprob[t] = logp[t] + b.ref_logprob[t];
  }
  return logp;
}

void expect_gradient_matches_fd(const Loss& loss, const LossBatch& b, std::vector<float> logp) {
  std::vector<float> grad, scratch;
  loss.evaluate(b, logp, local_reducer(), grad);
  double scale = 0;
  for (float g : grad) scale = std::max(scale, std::abs(static_cast<double>(g)));
  ASSERT_GT(scale, 0) << loss.name() << ": the test needs a nonzero gradient";
  for (size_t t = 0; t < logp.size(); ++t) {
    const float x = logp[t];
    logp[t] = x + kStep;
    const double plus = loss.evaluate(b, logp, local_reducer(), scratch).loss;
    logp[t] = x - kStep;
    const double minus = loss.evaluate(b, logp, local_reducer(), scratch).loss;
    logp[t] = x;
    const double fd = (plus - minus) / (2.0 * kStep);
    EXPECT_NEAR(grad[t], fd, kFdTol * scale) << loss.name() << " token " << t << " mask " << b.mask[t];
  }
}

TEST(LossRegistry, NamesConfigsAndErrors) {
  for (const std::string& name : loss_names()) EXPECT_EQ(make_loss(name)->name(), name);
  try {
    make_loss("ppo");
    FAIL() << "unknown loss accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'ppo' is not known; allowed: sft, grpo, dpo"), std::string::npos) << e.what();
  }
  auto expect_error = [](LossConfig config, const std::string& name, const std::string& key) {
    try {
      make_loss(name, config);
      FAIL() << key << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  };
  LossConfig c;
  c.grpo.clip_low = 1.0;
  expect_error(c, "grpo", "rl.clip_low=1");
  c = {};
  c.grpo.clip_high = -0.1;
  expect_error(c, "grpo", "rl.clip_high=-0.1");
  c = {};
  c.grpo.kl_beta = NAN;
  expect_error(c, "grpo", "rl.kl_beta=");
  c = {};
  c.grpo.tis_cap = 0.5;
  expect_error(c, "grpo", "rl.tis_cap=0.5");
  c = {};
  c.dpo.beta = 0;
  expect_error(c, "dpo", "rl.dpo_beta=0");
}

TEST(LossRegistry, BatchShapesMaskAndReducerAreChecked) {
  std::mt19937 rng(9);
  LossBatch b = random_batch(2, 3, rng);
  std::vector<float> logp = random_logp(b, rng), grad;
  const auto grpo = make_loss("grpo");
  EXPECT_NO_THROW(grpo->evaluate(b, logp, local_reducer(), grad));
  EXPECT_THROW(grpo->evaluate(b, std::vector<float>(5, -1.0f), local_reducer(), grad), Error);  // logp size
  EXPECT_THROW(grpo->evaluate(b, logp, Reducer{local_reducer().sum, nullptr}, grad), Error);
  LossBatch bad = b;
  bad.ref_logprob.pop_back();
  EXPECT_THROW(grpo->evaluate(bad, logp, local_reducer(), grad), Error);
  bad = b;
  bad.mask[1] = 0.5f;
  EXPECT_THROW(grpo->evaluate(bad, logp, local_reducer(), grad), Error);
  bad = b;
  bad.advantage.clear();
  EXPECT_THROW(grpo->evaluate(bad, logp, local_reducer(), grad), Error);
  bad = b;
  logp[0] = NAN;
  bad.mask[0] = 1.0f;
  EXPECT_THROW(grpo->evaluate(bad, logp, local_reducer(), grad), Error);
}

TEST(LossSft, TokenMeanValueAndGradient) {
  std::mt19937 rng(1);
  LossBatch b = random_batch(3, 5, rng);
  std::vector<float> logp = random_logp(b, rng);
  SftLoss sft;
  std::vector<float> grad;
  const LossResult r = sft.evaluate(b, logp, local_reducer(), grad);
  double n = 0, sum = 0;
  for (size_t t = 0; t < logp.size(); ++t) n += b.mask[t], sum += b.mask[t] * logp[t];
  EXPECT_NEAR(r.loss, -sum / n, 1e-12);
  EXPECT_EQ(r.metrics.at("loss_tokens"), n);
  for (size_t t = 0; t < logp.size(); ++t) EXPECT_FLOAT_EQ(grad[t], -b.mask[t] / n);
  expect_gradient_matches_fd(sft, b, logp);
}

TEST(GrpoLoss, GradientMatchesFiniteDifferencesWithClipKlAndTis) {
  std::mt19937 rng(2);
  GrpoConfig config{0.2, 0.28, 0.05, 1.5};
  LossBatch b = random_batch(4, 6, rng, config);
  std::vector<float> logp = random_logp(b, rng);
  GrpoLoss loss(config);
  std::vector<float> grad;
  const LossResult r = loss.evaluate(b, logp, local_reducer(), grad);
  // The random ratios in [0.6, 1.65] must exercise clipping and truncation for the test to mean anything.
  EXPECT_GT(r.metrics.at("clip_fraction"), 0.0);
  EXPECT_LT(r.metrics.at("tis_weight_mean"), 1.5);
  EXPECT_GT(r.metrics.at("ratio_max"), 1.28);
  expect_gradient_matches_fd(loss, b, logp);
}

TEST(GrpoLoss, OnPolicyWithoutKlIsAdvantageWeightedLogLikelihood) {
  std::mt19937 rng(3);
  LossBatch b = random_batch(3, 7, rng);
  std::vector<float> logp = random_logp(b, rng);
  b.old_logprob.clear();  // one update per batch: old == logp, ratio == 1
  b.ref_logprob.clear();
  GrpoLoss loss(GrpoConfig{});
  std::vector<float> grad;
  const LossResult r = loss.evaluate(b, logp, local_reducer(), grad);
  double n = 0, sum_adv = 0;
  for (size_t t = 0; t < logp.size(); ++t) n += b.mask[t], sum_adv += b.mask[t] * b.advantage[t];
  EXPECT_NEAR(r.loss, -sum_adv / n, 1e-6);
  for (size_t t = 0; t < logp.size(); ++t) EXPECT_NEAR(grad[t], -b.mask[t] * b.advantage[t] / n, 1e-7);
  EXPECT_EQ(r.metrics.at("clip_fraction"), 0.0);
  EXPECT_EQ(r.metrics.at("ratio_max"), 1.0);
  EXPECT_EQ(r.metrics.count("kl"), 0u);
}

// One token per row: (A, ratio) in each region of the clipped objective.
TEST(GrpoLoss, ClipZeroesGradientExactlyOnTheSideTheMinPicks) {
  struct Case { float adv, ratio; bool zero; };
  const std::vector<Case> cases = {
      {1.0f, 1.5f, true},   {1.0f, 0.5f, false},  // A > 0: only ratio > 1 + eps_high is clipped
      {-1.0f, 0.5f, true},  {-1.0f, 1.5f, false}, // A < 0: only ratio < 1 - eps_low is clipped
      {1.0f, 1.1f, false},  {-1.0f, 0.9f, false}, // inside the bounds
  };
  LossBatch b;
  b.rows = static_cast<int64_t>(cases.size());
  b.seq = 1;
  b.mask.assign(b.rows, 1.0f);
  std::vector<float> logp(b.rows, -1.0f);
  for (const Case& c : cases) {
    b.advantage.push_back(c.adv);
    b.old_logprob.push_back(-1.0f - std::log(c.ratio));
  }
  GrpoLoss loss(GrpoConfig{});
  std::vector<float> grad;
  const LossResult r = loss.evaluate(b, logp, local_reducer(), grad);
  const double n = static_cast<double>(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const double ratio = std::exp(logp[i] - static_cast<double>(b.old_logprob[i]));
    if (cases[i].zero)
      EXPECT_EQ(grad[i], 0.0f) << "case " << i;
    else
      EXPECT_NEAR(grad[i], -ratio * cases[i].adv / n, 1e-7) << "case " << i;
  }
  EXPECT_NEAR(r.metrics.at("clip_fraction"), 2 / n, 1e-12);
}

TEST(GrpoLoss, K3IsNonNegativeAndZeroAtTheReference) {
  LossBatch b;
  b.rows = 1;
  b.seq = 41;
  b.mask.assign(b.seq, 1.0f);
  b.advantage.assign(b.seq, 0.0f);  // isolate the KL term: L = beta * mean k3
  std::vector<float> logp(b.seq, -1.0f);
  for (int64_t t = 0; t < b.seq; ++t) b.ref_logprob.push_back(-1.0f + 0.1f * static_cast<float>(t - 20));
  GrpoLoss loss(GrpoConfig{0.2, 0.28, 2.0, 0.0});
  std::vector<float> grad;
  double mean_k3 = 0;
  for (int64_t t = 0; t < b.seq; ++t) {
    const double d = static_cast<double>(b.ref_logprob[t]) - logp[t];
    const double k3 = std::exp(d) - d - 1;
    EXPECT_GE(k3, 0.0);
    mean_k3 += k3 / static_cast<double>(b.seq);
  }
  LossResult r = loss.evaluate(b, logp, local_reducer(), grad);
  EXPECT_NEAR(r.metrics.at("kl"), mean_k3, 1e-12);
  EXPECT_NEAR(r.loss, 2.0 * mean_k3, 1e-12);
  EXPECT_GT(r.metrics.at("kl"), 0.0);
  b.ref_logprob = logp;
  r = loss.evaluate(b, logp, local_reducer(), grad);
  EXPECT_EQ(r.metrics.at("kl"), 0.0);
  EXPECT_EQ(r.loss, 0.0);
  for (float g : grad) EXPECT_EQ(g, 0.0f);
}

TEST(GrpoLoss, TruncatedImportanceWeightIsCapped) {
  LossBatch b;
  b.rows = 1;
  b.seq = 3;
  b.mask = {1, 1, 1};
  b.advantage = {1, 1, 1};
  std::vector<float> logp = {-1, -1, -1};
  b.old_logprob = logp;  // ratio 1
  // exp(old - infer) = e^2 (capped to 3), e^0.5, e^-1.
  b.infer_logprob = {-3.0f, -1.5f, 0.0f};
  GrpoLoss loss(GrpoConfig{0.2, 0.28, 0.0, 3.0});
  std::vector<float> grad;
  const LossResult r = loss.evaluate(b, logp, local_reducer(), grad);
  const double w[3] = {3.0, std::exp(0.5), std::exp(-1.0)};
  for (int t = 0; t < 3; ++t) EXPECT_NEAR(grad[t], -w[t] / 3, 1e-7) << t;
  EXPECT_NEAR(r.metrics.at("tis_weight_mean"), (w[0] + w[1] + w[2]) / 3, 1e-7);
  b.infer_logprob.clear();
  EXPECT_THROW(loss.evaluate(b, logp, local_reducer(), grad), Error);
}

// Two simulated ranks in two threads: the reducer sums (or maxes) both ranks' buffers.
class TwoRanks {
 public:
  Reducer reducer(int rank) {
    auto combine = [this, rank](double* data, int64_t n, bool is_max) {
      slot_[rank] = data;
      sync_.arrive_and_wait();
      std::vector<double> out(n);
      for (int64_t i = 0; i < n; ++i)
        out[i] = is_max ? std::max(slot_[0][i], slot_[1][i]) : slot_[0][i] + slot_[1][i];
      sync_.arrive_and_wait();
      std::copy(out.begin(), out.end(), data);
    };
    return Reducer{[combine](double* d, int64_t n) { combine(d, n, false); },
                   [combine](double* d, int64_t n) { combine(d, n, true); }};
  }

 private:
  std::barrier<> sync_{2};
  double* slot_[2] = {nullptr, nullptr};
};

LossBatch slice_rows(const LossBatch& b, int64_t first, int64_t count) {
  LossBatch s;
  s.rows = count;
  s.seq = b.seq;
  auto cut = [&](const auto& v, int64_t per) {
    using V = std::decay_t<decltype(v)>;
    return v.empty() ? V{} : V(v.begin() + first * per, v.begin() + (first + count) * per);
  };
  s.tokens = cut(b.tokens, b.seq), s.targets = cut(b.targets, b.seq), s.mask = cut(b.mask, b.seq);
  s.advantage = cut(b.advantage, b.seq), s.old_logprob = cut(b.old_logprob, b.seq);
  s.infer_logprob = cut(b.infer_logprob, b.seq), s.ref_logprob = cut(b.ref_logprob, b.seq);
  s.pair_id = cut(b.pair_id, 1), s.chosen = cut(b.chosen, 1);
  return s;
}

void expect_two_ranks_match_one(const Loss& loss, const LossBatch& b, const std::vector<float>& logp, int64_t split) {
  std::vector<float> one_grad;
  const LossResult one = loss.evaluate(b, logp, local_reducer(), one_grad);
  TwoRanks ranks;
  LossBatch part[2] = {slice_rows(b, 0, split), slice_rows(b, split, b.rows - split)};
  std::vector<float> part_logp[2] = {std::vector<float>(logp.begin(), logp.begin() + split * b.seq),
                                     std::vector<float>(logp.begin() + split * b.seq, logp.end())};
  std::vector<float> grad[2];
  LossResult result[2];
  std::exception_ptr error[2];
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      try {
        result[r] = loss.evaluate(part[r], part_logp[r], ranks.reducer(r), grad[r]);
      } catch (...) {
        error[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : error)
    if (e) std::rethrow_exception(e);
  grad[0].insert(grad[0].end(), grad[1].begin(), grad[1].end());
  // Only the association order of the global sums differs: agreement to double / float rounding.
  for (size_t t = 0; t < one_grad.size(); ++t) EXPECT_NEAR(grad[0][t], one_grad[t], 1e-7 * std::abs(one_grad[t]) + 1e-12);
  for (int r = 0; r < 2; ++r) {
    EXPECT_NEAR(result[r].loss, one.loss, 1e-12) << loss.name();
    for (const auto& [key, value] : one.metrics) EXPECT_NEAR(result[r].metrics.at(key), value, 1e-12) << key;
  }
}

LossBatch random_pairs(int64_t pairs, int64_t seq, std::mt19937& rng, std::vector<float>& logp) {
  LossBatch b = random_batch(2 * pairs, seq, rng);
  logp = random_logp(b, rng);
  for (int64_t r = 0; r < b.rows; ++r) {
    b.pair_id.push_back(r / 2 + 100);
    b.chosen.push_back(static_cast<int8_t>(r % 2 == 0));
  }
  return b;
}

TEST(LossGlobalNormalisation, TwoRanksGiveTheGradientOfOne) {
  std::mt19937 rng(4);
  GrpoConfig config{0.2, 0.28, 0.1, 2.0};
  LossBatch b = random_batch(6, 5, rng, config);
  std::vector<float> logp = random_logp(b, rng);
  b.mask[0] = b.mask[1] = 1;
  std::fill(b.mask.begin() + 5, b.mask.begin() + 10, 0.0f);  // unequal token counts per rank
  expect_two_ranks_match_one(SftLoss(), b, logp, 2);
  expect_two_ranks_match_one(GrpoLoss(config), b, logp, 2);
  std::vector<float> pair_logp;
  LossBatch pairs = random_pairs(3, 5, rng, pair_logp);
  expect_two_ranks_match_one(DpoLoss(DpoConfig{0.5}), pairs, pair_logp, 2);  // 1 pair vs 2 pairs
}

TEST(GrpoAdvantages, GroupNormalisation) {
  const std::vector<double> rewards = {1, 0, 0, 1, 0.5, 0.5, 0.5, 0.5, 3, -1, 2, 7};
  const std::vector<float> a = group_normalized_advantages(rewards, 4);
  for (int g = 0; g < 3; ++g) {
    double mean = 0, var = 0;
    for (int i = 4 * g; i < 4 * g + 4; ++i) mean += a[i] / 4.0;
    for (int i = 4 * g; i < 4 * g + 4; ++i) var += (a[i] - mean) * (a[i] - mean) / 4.0;
    EXPECT_NEAR(mean, 0.0, 1e-7) << g;
    if (g == 1) {
      for (int i = 4; i < 8; ++i) EXPECT_EQ(a[i], 0.0f);  // all-equal group: exactly 0
    } else {
      EXPECT_NEAR(std::sqrt(var), 1.0, 1e-5) << g;  // population std 1 (up to eps / std ~ 1e-6)
    }
  }
  EXPECT_NEAR(a[0], 1.0, 1e-5);  // {1,0,0,1}: mean 0.5, pop std 0.5
  const std::vector<float> centred = group_normalized_advantages(rewards, 4, 1e-6, false);
  EXPECT_NEAR(centred[8], 3 - 2.75, 1e-7);
  EXPECT_EQ(group_normalized_advantages({0.1, 0.1, 0.1}, 3), std::vector<float>(3, 0.0f));
  EXPECT_THROW(group_normalized_advantages(rewards, 5), Error);  // 5 does not divide 12
  EXPECT_THROW(group_normalized_advantages(rewards, 0), Error);
  EXPECT_THROW(group_normalized_advantages({1.0, NAN}, 2), Error);
}

TEST(DpoLoss, MatchesHandComputationAndPushesChosenUp) {
  // Pair 7: rows 0 (rejected) and 1 (chosen); seq 2, the second token of row 0 is masked out.
  LossBatch b;
  b.rows = 2;
  b.seq = 2;
  b.mask = {1, 0, 1, 1};
  b.pair_id = {7, 7};
  b.chosen = {0, 1};
  b.ref_logprob = {-1.0f, -5.0f, -2.0f, -1.5f};
  std::vector<float> logp = {-0.5f, -9.0f, -2.5f, -1.0f};
  DpoLoss loss(DpoConfig{0.5});
  std::vector<float> grad;
  const LossResult r = loss.evaluate(b, logp, local_reducer(), grad);
  const double chosen = 0.5 * ((-2.5 - -2.0) + (-1.0 - -1.5)), rejected = 0.5 * (-0.5 - -1.0);
  const double s = chosen - rejected;  // 0 - 0.25: the rejected side is (relatively) more likely
  EXPECT_EQ(r.metrics.at("accuracy"), 0.0);
  EXPECT_NEAR(r.metrics.at("reward_margin"), s, 1e-12);
  EXPECT_NEAR(r.loss, std::log1p(std::exp(-s)), 1e-12);
  EXPECT_NEAR(r.metrics.at("chosen_reward"), chosen, 1e-12);
  const double g = 0.5 / (1 + std::exp(s));
  EXPECT_NEAR(grad[2], -g, 1e-7);  // chosen: descending L raises its logps
  EXPECT_NEAR(grad[3], -g, 1e-7);
  EXPECT_NEAR(grad[0], g, 1e-7);   // rejected: lowers them
  EXPECT_EQ(grad[1], 0.0f);
  logp[3] = 0.0f;  // chosen now more likely: s = 0.5 - 0.25 > 0
  EXPECT_EQ(loss.evaluate(b, logp, local_reducer(), grad).metrics.at("accuracy"), 1.0);
  EXPECT_NEAR(neg_log_sigmoid(-1000), 1000, 1e-9);
  EXPECT_NEAR(neg_log_sigmoid(1000), 0, 1e-300);
  EXPECT_NEAR(sigmoid(-1000), 0, 1e-300);
}

TEST(DpoLoss, GradientMatchesFiniteDifferencesAndPairsAreChecked) {
  std::mt19937 rng(5);
  std::vector<float> logp;
  LossBatch b = random_pairs(3, 6, rng, logp);
  DpoLoss loss(DpoConfig{0.5});
  expect_gradient_matches_fd(loss, b, logp);
  std::vector<float> grad;
  LossBatch lonely = b;
  lonely.pair_id[1] = 55;  // row 0's partner is elsewhere
  EXPECT_THROW(loss.evaluate(lonely, logp, local_reducer(), grad), Error);
  LossBatch twice = b;
  twice.chosen[1] = 1;
  EXPECT_THROW(loss.evaluate(twice, logp, local_reducer(), grad), Error);
  b.ref_logprob.clear();
  EXPECT_THROW(loss.evaluate(b, logp, local_reducer(), grad), Error);
}

// End to end: -dL/dlogp as the model's per-token CE weights gives dL/dtheta. Checked along a random
// direction v ~ N(0, I) over all parameters: g.v against (L(theta + h v) - L(theta - h v)) / 2h, each L
// from fp32 forward passes. Step h = 3e-4: the fp32 logps carry rounding ~1e-7 in L (a mean of O(1)
// terms), i.e. noise ~1e-7 / h ~ 3e-4 in the quotient; larger steps move some ratios across GRPO's clip
// bounds (measured: h = 3e-3 is off by 20%), smaller ones amplify the noise. Measured agreement at this
// h: 1.5e-3 (GRPO) and 1e-4 (DPO) relative; the tolerance 1% of |g.v| (asserted > 1e-2) leaves margin,
// while a wrong sign, scale or token alignment of the weights is off by O(1). (The formulas themselves
// are checked exactly above; this checks the trainer-side contract.)
double loss_at(Transformer& model, const Loss& loss, const LossBatch& b, std::vector<float>* grad) {
  const int64_t n = b.tokens_count();
  std::vector<float> zero(n, 0.0f), logp(n), dloss;
  model.params().zero_grads();
  model.forward_backward(b.tokens.data(), b.targets.data(), zero.data(), b.rows, b.seq, 0.0, logp.data());
  const double value = loss.evaluate(b, logp, local_reducer(), dloss).loss;
  if (grad) {
    std::vector<float> weight(n);
    for (int64_t t = 0; t < n; ++t) weight[t] = -dloss[t];
    model.params().zero_grads();
    model.forward_backward(b.tokens.data(), b.targets.data(), weight.data(), b.rows, b.seq, 0.0);
    grad->assign(model.params().grads().begin(), model.params().grads().end());
  }
  return value;
}

ModelConfig tiny_config() {
  ModelConfig config;
  config.n_layers = 1;
  config.d_model = 32;
  config.n_heads = 4;
  config.n_kv_heads = 2;
  config.d_ff = 48;
  config.max_seq_len = 16;
  config.init_std = 0.3;  // a peaked, non-uniform policy so the logps vary
  return config;
}

void expect_model_gradient_is_loss_gradient(const Loss& loss, LossBatch b, uint64_t seed) {
  Transformer model(tiny_config());
  model.initialize(seed);
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::uniform_int_distribution<int32_t> token(0, 255);
  for (auto& t : b.tokens) t = token(rng);
  for (int64_t i = 0; i < b.tokens_count(); ++i) b.targets[i] = (i + 1) % b.seq ? b.tokens[i + 1] : ByteTokenizer::kEos;
  // old_logprob = the current policy's logps, as at the start of a step (ratio 1, inside the clip).
  const int64_t n = b.tokens_count();
  std::vector<float> zero(n, 0.0f);
  b.old_logprob.assign(n, 0.0f);
  model.forward_backward(b.tokens.data(), b.targets.data(), zero.data(), b.rows, b.seq, 0.0, b.old_logprob.data());
  for (int64_t t = 0; t < n; ++t) {
    b.infer_logprob[t] = b.old_logprob[t] + 0.3f * std::sin(static_cast<float>(t));
    b.ref_logprob[t] = b.old_logprob[t] + 0.5f * std::cos(static_cast<float>(t));
  }
  std::vector<float> grad;
  loss_at(model, loss, b, &grad);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto& values = model.params().values();
  const std::vector<float> theta(values.begin(), values.end());
  std::vector<float> v(theta.size());
  double directional = 0;
  for (size_t i = 0; i < v.size(); ++i) v[i] = normal(rng), directional += static_cast<double>(grad[i]) * v[i];
  const float h = 3e-4f;
  auto shifted = [&](float sign) {
    for (size_t i = 0; i < v.size(); ++i) values[i] = theta[i] + sign * h * v[i];
    return loss_at(model, loss, b, nullptr);
  };
  const double fd = (shifted(1) - shifted(-1)) / (2 * h);
  EXPECT_GT(std::abs(directional), 1e-2) << loss.name() << ": too small to test";
  EXPECT_NEAR(fd, directional, 0.01 * std::abs(directional)) << loss.name();
}

TEST(LossModelEndToEnd, CeWeightsFromTheLossGiveTheParameterGradient) {
  std::mt19937 rng(6);
  LossBatch b = random_batch(4, 8, rng);
  expect_model_gradient_is_loss_gradient(GrpoLoss(GrpoConfig{0.2, 0.28, 0.1, 2.0}), b, 11);
  for (int64_t r = 0; r < b.rows; ++r) {
    b.pair_id.push_back(r / 2);
    b.chosen.push_back(static_cast<int8_t>(r % 2));
  }
  expect_model_gradient_is_loss_gradient(DpoLoss(DpoConfig{0.5}), b, 12);
}

}  // namespace
}  // namespace flywheel
