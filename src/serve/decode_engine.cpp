#include "serve/decode_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <utility>

#include "core/error.h"
#include "serve/cached_forward.h"

namespace flywheel {
namespace {

ModelConfig invariant_config(ModelConfig config) {
  config.forward_kernels = "invariant";
  return config;
}

void validate_request(const GenerationRequest& r, const ModelConfig& cfg) {
  FW_CHECK(!r.prompt.empty(), "request ", r.id, ": prompt is empty; it needs at least one token");
  validate_sampling(r.sampling, cfg.vocab_size);
  for (int32_t id : r.prompt)
    FW_CHECK(id >= 0 && id < cfg.vocab_size, "request ", r.id, ": prompt token ", id, " outside [0, ",
             cfg.vocab_size, ")");
  const auto length = static_cast<int64_t>(r.prompt.size());
  FW_CHECK(length + r.sampling.max_new_tokens <= cfg.max_seq_len, "request ", r.id, ": prompt length ", length,
           " + sampling.max_new_tokens = ", r.sampling.max_new_tokens, " exceeds model.max_seq_len = ",
           cfg.max_seq_len, ": the sum must be <= max_seq_len");
}

}  // namespace

DecodeEngine::DecodeEngine(const ModelConfig& config, int64_t max_batch, DType weights)
    : config_(invariant_config(config)),
      model_(config_, Transformer::WeightsOnly{weights}),
      cache_(config_, max_batch) {
  slots_.resize(static_cast<size_t>(max_batch));
}

void DecodeEngine::check(const GenerationRequest& request) const { validate_request(request, config_); }

void DecodeEngine::submit(GenerationRequest request) {
  check(request);
  if (!request.adapter.empty()) {
    std::string loaded;
    if (adapters_)
      for (const std::string& name : adapters_->names()) loaded += (loaded.empty() ? "" : ", ") + name;
    FW_INPUT_CHECK(adapters_ && adapters_->has(request.adapter), "request ", request.id, ": adapter '", request.adapter,
                   "' is not loaded (loaded: ", loaded.empty() ? "none" : loaded, ")");
    adapters_->pin(request.adapter);
  }
  waiting_.push_back(std::move(request));
}

std::vector<RowAdapterGroup> DecodeEngine::adapter_groups(const std::vector<CachedChunk>& chunks,
                                                          const std::vector<Slot*>& order) {
  std::vector<RowAdapterGroup> groups;
  std::map<std::string, size_t> index;
  int64_t row = 0;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const std::string& name = order[c]->request.adapter;
    if (!name.empty()) {
      auto [it, fresh] = index.emplace(name, groups.size());
      if (fresh) groups.push_back({adapters_->find(name), {}});
      for (int64_t i = 0; i < chunks[c].count; ++i) groups[it->second].rows.push_back(row + i);
    }
    row += chunks[c].count;
  }
  return groups;
}

int64_t DecodeEngine::active() const {
  return std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.active; });
}

void DecodeEngine::admit_waiting() {
  for (Slot& slot : slots_) {
    if (!admitting_ || waiting_.empty()) return;
    if (slot.active) continue;
    slot = Slot{};
    slot.active = true;
    slot.request = std::move(waiting_.front());
    waiting_.pop_front();
    slot.result.id = slot.request.id;
    slot.sequence = slot.request.prompt;
  }
}

bool DecodeEngine::sample_into(Slot& slot, float* scaled_logits) {
  const SamplingParams& params = slot.request.sampling;
  const int64_t index = static_cast<int64_t>(slot.result.tokens.size());
  CounterRng rng({slot.request.seed, RngPurpose::kSampling, 0, static_cast<uint64_t>(index)});
  const int32_t token = sample_token(scaled_logits, config_.vocab_size, params, rng);
  const float logprob = token_logprob(scaled_logits, token);
  slot.sequence.push_back(token);
  slot.result.tokens.push_back(token);
  slot.result.logprobs.push_back(logprob);
  slot.result.snapshot_steps.push_back(snapshot_step_);
  SampledToken sampled{slot.request.id, token, logprob, snapshot_step_, {}, false};
  if (params.top_logprobs > 0) {
    for (int32_t id : top_ids(scaled_logits, config_.vocab_size, params.top_logprobs))
      sampled.top_logprobs.push_back({id, id == token ? logprob : token_logprob(scaled_logits, id)});
    slot.result.top_logprobs.push_back(sampled.top_logprobs);
  }
  ++tokens_generated_;
  const auto& stops = params.stop_tokens;
  slot.result.stopped = std::find(stops.begin(), stops.end(), token) != stops.end();
  sampled.finished = slot.result.stopped || index + 1 >= params.max_new_tokens ||
                     static_cast<int64_t>(slot.sequence.size()) >= config_.max_seq_len;
  sampled_.push_back(std::move(sampled));
  return sampled_.back().finished;
}

float DecodeEngine::token_logprob(float* scaled_logits, int32_t token) {
  // The trainer's cross-entropy code on the same scaled logits (it overwrites nothing when compute_grad is false).
  float logprob = 0;
  const float no_weight = 0;
  model_.backend().cross_entropy(scaled_logits, &token, &no_weight, 1, config_.vocab_size, false, &logprob);
  return logprob;
}

bool DecodeEngine::cancel(int64_t id) {
  for (auto it = waiting_.begin(); it != waiting_.end(); ++it) {
    if (it->id != id) continue;
    if (!it->adapter.empty()) adapters_->unpin(it->adapter);
    waiting_.erase(it);
    return true;
  }
  for (Slot& slot : slots_) {
    if (!slot.active || slot.request.id != id) continue;
    if (!slot.request.adapter.empty()) adapters_->unpin(slot.request.adapter);
    slot = Slot{};  // the KV cache slot is rewritten from position 0 by the next sequence admitted to it
    return true;
  }
  return false;
}

int64_t DecodeEngine::prefill_leader(const Slot& slot, const std::vector<CachedChunk>& chunks,
                                     const std::vector<Slot*>& order) const {
  if (!shared_prefill_ || slot.cached != 0) return -1;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const Slot& other = *order[c];
    if (other.cached == 0 && other.sequence == slot.sequence && other.request.adapter == slot.request.adapter)
      return static_cast<int64_t>(c);
  }
  return -1;
}

void DecodeEngine::copy_prefill(int64_t from_slot, int64_t to_slot, int64_t positions) {
  const size_t bytes = sizeof(float) * static_cast<size_t>(positions * cache_.kv_width());
  for (int64_t layer = 0; layer < config_.n_layers; ++layer) {
    std::memcpy(cache_.keys(layer, to_slot), cache_.keys(layer, from_slot), bytes);
    std::memcpy(cache_.values(layer, to_slot), cache_.values(layer, from_slot), bytes);
  }
}

std::vector<GenerationResult> DecodeEngine::step() {
  const auto began = std::chrono::steady_clock::now();
  sampled_.clear();
  admit_waiting();
  std::vector<CachedChunk> chunks;
  std::vector<Slot*> order;
  struct Follower {
    int64_t slot;
    int64_t leader;  // index into chunks
  };
  std::vector<Follower> followers;
  for (int64_t s = 0; s < max_batch(); ++s) {
    Slot& slot = slots_[s];
    if (!slot.active) continue;
    if (const int64_t leader = prefill_leader(slot, chunks, order); leader >= 0) {
      followers.push_back({s, leader});
      continue;
    }
    const auto length = static_cast<int64_t>(slot.sequence.size());
    chunks.push_back({s, slot.cached, slot.sequence.data() + slot.cached, length - slot.cached});
    order.push_back(&slot);
  }
  std::vector<GenerationResult> finished;
  if (chunks.empty()) return finished;  // nothing to run (not counted as busy)

  Buffer<float> hidden;
  const std::vector<RowAdapterGroup> groups = adapter_groups(chunks, order);
  if (!groups.empty()) model_.set_row_adapters(&groups);
  try {
    cached_forward(model_, cache_, chunks, hidden);
  } catch (...) {
    model_.set_row_adapters(nullptr);
    throw;
  }
  model_.set_row_adapters(nullptr);
  const int64_t m = static_cast<int64_t>(chunks.size()), vocab = config_.vocab_size;
  const int64_t rows = m + static_cast<int64_t>(followers.size());
  Buffer<float> logits(rows * vocab);
  model_.head_logits(hidden.data(), m, logits.data());
  for (size_t f = 0; f < followers.size(); ++f) {  // before any row is scaled by its own temperature
    const Follower& follower = followers[f];
    const int64_t positions = chunks[static_cast<size_t>(follower.leader)].count;
    copy_prefill(chunks[static_cast<size_t>(follower.leader)].slot, follower.slot, positions);
    std::memcpy(logits.data() + (m + static_cast<int64_t>(f)) * vocab, logits.data() + follower.leader * vocab,
                sizeof(float) * static_cast<size_t>(vocab));
    slots_[follower.slot].cached = positions;
    order.push_back(&slots_[follower.slot]);
  }
  prefills_shared_ += static_cast<int64_t>(followers.size());
  for (int64_t c = 0; c < rows; ++c) {
    Slot& slot = *order[c];
    if (c < m) slot.cached += chunks[c].count;
    float* row = logits.data() + c * vocab;
    const float scale = logit_scale_for(slot.request.sampling.temperature);
    if (scale != 1.0f)  // the trainer's head multiplies the same way (Transformer::set_logit_scale)
      for (int64_t i = 0; i < vocab; ++i) row[i] *= scale;
    if (sample_into(slot, row)) {
      if (!slot.request.adapter.empty()) adapters_->unpin(slot.request.adapter);
      finished.push_back(std::move(slot.result));
      slot = Slot{};
    }
  }
  busy_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  return finished;
}

std::vector<float> score_tokens(Transformer& model, const std::vector<int32_t>& tokens, int64_t first,
                                float temperature) {
  const auto length = static_cast<int64_t>(tokens.size());
  FW_CHECK(first >= 1 && first <= length, "score_tokens: first = ", first, " must be in [1, ", length,
           "] (token 0 has no prefix to be scored by)");
  FW_CHECK(std::isfinite(temperature) && temperature > 0.0f, "score_tokens: temperature = ", temperature,
           ": must be finite and > 0");
  if (first == length) return {};
  // Inputs tokens[0 .. L-2], targets tokens[1 .. L-1]: row t scores tokens[t + 1].
  const std::vector<int32_t> inputs(tokens.begin(), tokens.end() - 1), targets(tokens.begin() + 1, tokens.end());
  std::vector<float> logprob(static_cast<size_t>(length - 1));
  const float previous = model.logit_scale();
  model.set_logit_scale(logit_scale_for(temperature));
  try {
    model.forward_logprobs(inputs.data(), targets.data(), 1, length - 1, logprob.data());
  } catch (...) {
    model.set_logit_scale(previous);
    throw;
  }
  model.set_logit_scale(previous);
  return std::vector<float>(logprob.begin() + (first - 1), logprob.end());
}

}  // namespace flywheel
