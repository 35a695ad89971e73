#include "serve/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace flywheel {

void validate_sampling(const SamplingParams& p, int64_t vocab) {
  FW_CHECK(std::isfinite(p.temperature) && p.temperature > 0.0f, "sampling.temperature = ", p.temperature,
           ": must be finite and > 0 (for greedy decoding use top_k = 1)");
  FW_CHECK(p.top_p > 0.0f && p.top_p <= 1.0f, "sampling.top_p = ", p.top_p, ": must be in (0, 1]");
  FW_CHECK(p.top_k >= 0, "sampling.top_k = ", p.top_k, ": must be >= 0 (0 turns top-k off)");
  FW_CHECK(p.max_new_tokens >= 1, "sampling.max_new_tokens = ", p.max_new_tokens, ": must be >= 1");
  for (int32_t id : p.stop_tokens)
    FW_CHECK(id >= 0 && id < vocab, "sampling.stop_tokens holds ", id, ": token ids must be in [0, ", vocab, ")");
}

SamplingCandidates sampling_candidates(const float* z, int64_t vocab, const SamplingParams& params) {
  const int64_t keep_k = params.top_k > 0 ? std::min(params.top_k, vocab) : vocab;
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  auto before = [z](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); };
  std::partial_sort(order.begin(), order.begin() + keep_k, order.end(), before);
  order.resize(static_cast<size_t>(keep_k));

  SamplingCandidates c;
  const double max_z = z[order[0]];
  double total = 0;
  for (int32_t id : order) total += std::exp(static_cast<double>(z[id]) - max_z);
  // Top-p over the renormalised top-k distribution: the shortest prefix with mass >= top_p.
  double mass = 0;
  for (int32_t id : order) {
    const double p = std::exp(static_cast<double>(z[id]) - max_z) / total;
    c.ids.push_back(id);
    c.probs.push_back(p);
    mass += p;
    if (mass >= static_cast<double>(params.top_p)) break;
  }
  for (double& p : c.probs) p /= mass;
  return c;
}

int32_t sample_token(const float* scaled_logits, int64_t vocab, const SamplingParams& params, CounterRng& rng) {
  const SamplingCandidates c = sampling_candidates(scaled_logits, vocab, params);
  const double u = rng.uniform();
  double running = 0;
  for (size_t i = 0; i < c.ids.size(); ++i) {
    running += c.probs[i];
    if (running > u) return c.ids[i];
  }
  return c.ids.back();
}

}  // namespace flywheel
