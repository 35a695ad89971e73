// The trainer's caller-batch step (Trainer::train_on_batch: logprob pass -> objective -> weighted
// forward+backward) against the plain SFT step: with the SFT objective on the same rows both must
// move the weights identically, and a policy-gradient step must raise the logprob of a positively
// rewarded completion and lower that of a negatively rewarded one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "launch/shape.h"
#include "train/loss.h"
#include "train/trainer.h"

namespace flywheel {
namespace {

Shape tiny_shape() {
  Shape shape = load_shape(std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes/tiny-dense.ini",
                           {"--train.micro_batch=4", "--train.seq_len=16", "--model.n_layers=2",
                            "--model.d_model=32", "--model.d_ff=64", "--train.warmup_steps=0"});
  shape.validate(1);
  return shape;
}

LossBatch as_rl_batch(const Batch& b) {
  LossBatch r;
  r.rows = b.rows;
  r.seq = b.seq;
  r.tokens = b.tokens;
  r.targets = b.targets;
  r.mask = b.loss_mask;
  return r;
}

Objective objective_of(const Loss& loss, const LossBatch& batch) {
  return [&](const std::vector<float>& logp, std::vector<float>& dloss) {
    const LossResult r = loss.evaluate(batch, logp, local_reducer(), dloss);
    return ObjectiveValue{r.loss, {}};
  };
}

TEST(RlStep, SftObjectiveMatchesTheSftStep) {
  const Shape shape = tiny_shape();
  auto source = make_data_source(shape.data, shape.train.seq_len, shape.train.seed);
  Trainer plain(shape.train_spec(), *source), caller(shape.train_spec(), *source);
  const Sampler sampler(*source, shape.train.seed, shape.train.seq_len);
  const SftLoss sft;
  for (int64_t step = 0; step < 3; ++step) {
    const StepMetrics a = plain.train_step(step);
    const Batch b = sampler.make_batch(step * shape.train.global_batch(), shape.train.global_batch());
    const LossBatch rl = as_rl_batch(b);
    const StepMetrics c =
        caller.train_on_batch(step, {b.rows, b.seq, b.tokens, b.targets, b.loss_mask}, objective_of(sft, rl));
    EXPECT_NEAR(a.loss, c.loss, 1e-6 * a.loss) << "step " << step;
    EXPECT_NEAR(a.grad_norm, c.grad_norm, 1e-5 * a.grad_norm) << "step " << step;
  }
  const Buffer<float>& x = plain.shards().values();
  const Buffer<float>& y = caller.shards().values();
  ASSERT_EQ(x.size(), y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(x[i]) - y[i]));
  // The two paths weight each token's cross-entropy by 1/N computed once in double (train_step) or
  // as -dL/dlogp in float (the loss): the same values up to one float rounding, so after three
  // AdamW steps the weights agree to a few ulps of the lr-sized updates.
  EXPECT_LT(worst, 1e-6);
}

TEST(RlStep, PolicyGradientRaisesRewardedAndLowersPenalisedCompletions) {
  const Shape shape = tiny_shape();
  auto source = make_data_source(shape.data, shape.train.seq_len, shape.train.seed);
  Trainer trainer(shape.train_spec(), *source);
  const Sampler sampler(*source, shape.train.seed, shape.train.seq_len);
  const Batch b = sampler.make_batch(0, shape.train.global_batch());
  LossBatch rl = as_rl_batch(b);
  // Rows 0, 2: advantage +1; rows 1, 3: -1 (constant over each row's completion tokens).
  rl.advantage.assign(rl.mask.size(), 0.0f);
  for (int64_t r = 0; r < rl.rows; ++r)
    for (int64_t t = 0; t < rl.seq; ++t) rl.advantage[r * rl.seq + t] = r % 2 == 0 ? 1.0f : -1.0f;
  const auto grpo = make_loss("grpo");
  std::vector<float> before, after;
  trainer.train_on_batch(0, {b.rows, b.seq, b.tokens, b.targets, b.loss_mask}, objective_of(*grpo, rl), &before);
  trainer.train_on_batch(1, {b.rows, b.seq, b.tokens, b.targets, b.loss_mask}, objective_of(*grpo, rl), &after);
  for (int64_t r = 0; r < rl.rows; ++r) {
    double change = 0;
    for (int64_t t = 0; t < rl.seq; ++t) {
      const int64_t i = r * rl.seq + t;
      if (rl.mask[i] > 0) change += after[i] - before[i];
    }
    if (r % 2 == 0)
      EXPECT_GT(change, 0) << "row " << r << " (advantage +1) should become more likely";
    else
      EXPECT_LT(change, 0) << "row " << r << " (advantage -1) should become less likely";
  }
}

}  // namespace
}  // namespace flywheel
