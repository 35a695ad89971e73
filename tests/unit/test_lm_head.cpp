// The LM head runs only at the positions that matter (model/lm_head.cpp): a position of loss weight 0
// is skipped in the backward, a logprob pass computes only the positions it is asked for. Skipping
// must not change the loss, any gradient, or a logprob: each is compared with the same pass over every
// position (asking forward_backward for token_logprob runs the head on all of them).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "model/transformer.h"

namespace flywheel {
namespace {

ModelConfig small(bool tie) {
  ModelConfig c;
  c.vocab_size = 61;
  c.d_model = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 40;
  c.max_seq_len = 16;
  c.tie_embeddings = tie;
  c.forward_kernels = "invariant";  // row results independent of which rows share a head chunk
  return c;
}

struct Rows {
  int64_t rows = 3, seq = 9;
  std::vector<int32_t> tokens, targets;
  std::vector<float> weight, wanted;  // weight: a reply of 2 positions per row, as chat rows are
};

Rows make_rows(int64_t vocab) {
  Rows r;
  const int64_t n = r.rows * r.seq;
  for (int64_t i = 0; i < n; ++i) {
    r.tokens.push_back(static_cast<int32_t>((11 * i + 3) % vocab));
    r.targets.push_back(static_cast<int32_t>((5 * i + 1) % vocab));
    const bool reply = i % r.seq >= r.seq - 3 && i % r.seq < r.seq - 1;
    r.weight.push_back(reply ? 0.25f - 0.1f * static_cast<float>(i % 2) : 0.0f);
    r.wanted.push_back(reply ? 1.0f : 0.0f);
  }
  return r;
}

struct Pass {
  double ce = 0;
  std::vector<float> grads;
};

// One forward + backward from fresh gradients; with_logprob forces the head over every position.
Pass run_pass(Transformer& model, const Rows& r, bool with_logprob) {
  Buffer<float>& grads = model.params().grads();
  std::fill(grads.begin(), grads.end(), 0.0f);
  std::vector<float> logprob(r.tokens.size());
  Pass p;
  p.ce = model
             .forward_backward(r.tokens.data(), r.targets.data(), r.weight.data(), r.rows, r.seq, 0.0,
                               with_logprob ? logprob.data() : nullptr)
             .ce_loss;
  p.grads.assign(grads.begin(), grads.end());
  return p;
}

class LmHead : public ::testing::TestWithParam<bool> {};

TEST_P(LmHead, SkippingUnweightedPositionsChangesNoLossAndNoGradient) {
  Transformer model(small(GetParam()));
  model.initialize(9);
  const Rows r = make_rows(model.config().vocab_size);
  const Pass skipped = run_pass(model, r, false), full = run_pass(model, r, true);
  EXPECT_NEAR(skipped.ce, full.ce, 1e-6 * full.ce);
  ASSERT_EQ(skipped.grads.size(), full.grads.size());
  double worst = 0, largest = 0;
  for (size_t i = 0; i < full.grads.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(skipped.grads[i]) - full.grads[i]));
    largest = std::max(largest, std::abs(static_cast<double>(full.grads[i])));
  }
  ASSERT_GT(largest, 0.0);
  // The same terms summed in another grouping (BLAS blocks over fewer rows): a few float roundings.
  EXPECT_LT(worst, 1e-5 * largest);
}

TEST_P(LmHead, LogprobPassComputesTheWantedPositionsBitForBitAndZeroElsewhere) {
  Transformer model(small(GetParam()));
  model.initialize(4);
  const Rows r = make_rows(model.config().vocab_size);
  const size_t n = r.tokens.size();
  std::vector<float> all(n), some(n, -1.0f);
  model.forward_logprobs(r.tokens.data(), r.targets.data(), r.rows, r.seq, all.data());
  model.forward_logprobs(r.tokens.data(), r.targets.data(), r.rows, r.seq, some.data(), r.wanted.data());
  for (size_t i = 0; i < n; ++i) {
    if (r.wanted[i] != 0) {
      EXPECT_EQ(some[i], all[i]) << "position " << i;
      EXPECT_LT(all[i], 0.0f) << "position " << i;
    } else {
      EXPECT_EQ(some[i], 0.0f) << "position " << i;
    }
  }
}

TEST_P(LmHead, NoWeightedPositionMeansNoLossAndNoHeadGradient) {
  Transformer model(small(GetParam()));
  model.initialize(2);
  Rows r = make_rows(model.config().vocab_size);
  std::fill(r.weight.begin(), r.weight.end(), 0.0f);
  const Pass p = run_pass(model, r, false);
  EXPECT_EQ(p.ce, 0.0);
  for (float g : p.grads) ASSERT_EQ(g, 0.0f);
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, LmHead, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "tied" : "untied"; });

}  // namespace
}  // namespace flywheel
