#include "serve/sampling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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
  FW_CHECK(p.top_logprobs >= 0 && p.top_logprobs <= vocab, "sampling.top_logprobs = ", p.top_logprobs,
           ": must be in [0, ", vocab, "]");
}

namespace {

// z descending, ties by lower id first: the rule's order.
struct Before {
  const float* z;
  bool operator()(int32_t a, int32_t b) const { return z[a] > z[b] || (z[a] == z[b] && a < b); }
};

// The ids of the first `limit` places of the order, sorted a block at a time as they are asked for
// (blocks double). A walk that goes deep (a flat distribution: an untrained model, a high temperature)
// switches to one radix sort of the rest, O(V), rather than partial sorts that add up to O(V log V): the
// same total order, so the same ids in the same places and the same draws.
class OrderedIds {
 public:
  OrderedIds(const float* z, int64_t vocab, int64_t limit) : z_(z), limit_(limit), ids_(static_cast<size_t>(vocab)) {
    std::iota(ids_.begin(), ids_.end(), 0);
  }
  int64_t size() const { return limit_; }
  int32_t operator[](int64_t place) {
    while (place >= sorted_) extend();
    return ids_[static_cast<size_t>(place)];
  }

 private:
  static constexpr int64_t kRadixFrom = 4096;  // places sorted before the rest is radix-sorted at once
  static constexpr int kDigitBits = 11;
  static constexpr int64_t kBuckets = int64_t{1} << kDigitBits;

  void extend() {
    if (sorted_ + block_ > kRadixFrom) return radix_sort_rest();
    const int64_t end = std::min(limit_, sorted_ + block_);
    std::partial_sort(ids_.begin() + sorted_, ids_.begin() + end, ids_.end(), Before{z_});
    sorted_ = end;
    block_ *= 2;
  }

  // A key whose ascending order is z descending: the float's bits made monotone (negatives flipped, the sign bit
  // set on the others), then complemented. -0 becomes +0 first, as the comparison z[a] > z[b] sees them equal.
  uint32_t key(int32_t id) const {
    const float v = z_[id] == 0.0f ? 0.0f : z_[id];
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    bits = (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    return ~bits;
  }

  // The places [sorted_, vocab): their ids in ascending order, then a stable LSD radix sort by key in 11-bit
  // digits, so equal z keep the lower id first -- Before's order.
  void radix_sort_rest() {
    const auto vocab = static_cast<int64_t>(ids_.size());
    std::vector<char> present(static_cast<size_t>(vocab), 0);
    for (int64_t i = sorted_; i < vocab; ++i) present[static_cast<size_t>(ids_[static_cast<size_t>(i)])] = 1;
    std::vector<int32_t> rest;
    rest.reserve(static_cast<size_t>(vocab - sorted_));
    for (int32_t id = 0; id < vocab; ++id)
      if (present[static_cast<size_t>(id)]) rest.push_back(id);
    std::vector<int32_t> scratch(rest.size());
    for (int shift = 0; shift < 32; shift += kDigitBits) {
      std::vector<int64_t> start(kBuckets + 1, 0);
      for (int32_t id : rest) ++start[((key(id) >> shift) & (kBuckets - 1)) + 1];
      for (int64_t b = 0; b < kBuckets; ++b) start[b + 1] += start[b];
      for (int32_t id : rest) scratch[static_cast<size_t>(start[(key(id) >> shift) & (kBuckets - 1)]++)] = id;
      rest.swap(scratch);
    }
    std::copy(rest.begin(), rest.end(), ids_.begin() + sorted_);
    sorted_ = limit_;
  }

  const float* z_;
  int64_t limit_, sorted_ = 0, block_ = 64;
  std::vector<int32_t> ids_;
};

// Steps 1-3 of the rule: the kept places of the order and their renormalised probabilities.
class KeptDistribution {
 public:
  KeptDistribution(const float* z, int64_t vocab, const SamplingParams& params)
      : z_(z), vocab_(vocab), order_(z, vocab, params.top_k > 0 ? std::min(params.top_k, vocab) : vocab) {
    max_z_ = z[order_[0]];
    for (int32_t id : kept_in_id_order()) total_ += unnormalised(id);
    if (params.top_p >= 1.0f) {  // every kept id, summed in id order
      kept_ = order_.size();
      for (int32_t id : kept_in_id_order()) mass_ += unnormalised(id) / total_;
      return;
    }
    while (kept_ < order_.size()) {  // the shortest prefix whose mass reaches top_p
      mass_ += unnormalised(order_[kept_++]) / total_;
      if (mass_ >= static_cast<double>(params.top_p)) break;
    }
  }
  int64_t size() const { return kept_; }
  int32_t id(int64_t place) { return order_[place]; }
  double prob(int64_t place) { return unnormalised(order_[place]) / total_ / mass_; }

 private:
  double unnormalised(int32_t id) const { return std::exp(static_cast<double>(z_[id]) - max_z_); }
  // The ids top-k keeps, in id order (every id without top-k: no sort needed).
  std::vector<int32_t> kept_in_id_order() {
    std::vector<int32_t> ids;
    if (order_.size() == vocab_) {
      ids.resize(static_cast<size_t>(vocab_));
      std::iota(ids.begin(), ids.end(), 0);
      return ids;
    }
    for (int64_t place = 0; place < order_.size(); ++place) ids.push_back(order_[place]);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  const float* z_;
  int64_t vocab_;
  OrderedIds order_;
  double max_z_ = 0, total_ = 0, mass_ = 0;
  int64_t kept_ = 0;
};

}  // namespace

SamplingCandidates sampling_candidates(const float* z, int64_t vocab, const SamplingParams& params) {
  KeptDistribution kept(z, vocab, params);
  SamplingCandidates c;
  for (int64_t place = 0; place < kept.size(); ++place) {
    c.ids.push_back(kept.id(place));
    c.probs.push_back(kept.prob(place));
  }
  return c;
}

std::vector<int32_t> top_ids(const float* z, int64_t vocab, int64_t count) {
  OrderedIds order(z, vocab, std::min(count, vocab));
  std::vector<int32_t> ids;
  for (int64_t place = 0; place < order.size(); ++place) ids.push_back(order[place]);
  return ids;
}

int32_t sample_token(const float* z, int64_t vocab, const SamplingParams& params, CounterRng& rng) {
  KeptDistribution kept(z, vocab, params);
  const double u = rng.uniform();
  double running = 0;
  for (int64_t place = 0; place < kept.size(); ++place) {
    running += kept.prob(place);
    if (running > u) return kept.id(place);
  }
  return kept.id(kept.size() - 1);
}

}  // namespace flywheel
