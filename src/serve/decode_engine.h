// KV-cache decode engine with continuous batching, exact with respect to the trainer.
//
// Exactness: the model runs with forward_kernels = "invariant" (batch-invariant matmuls), every
// other op is the trainer's own per-row op, and attention reads a per-slot KV cache with results
// that do not depend on how queries are tiled; so the log-probability the engine reports for a
// sampled token equals, bit for bit, the trainer's full-sequence forward on prompt + generated
// (Transformer::forward_logprobs / score_tokens with the same temperature), whatever the batch
// composition. Batch-invariant inference: He et al., Thinking Machines Lab 2025, "Defeating
// Nondeterminism in LLM Inference". Continuous batching: Yu et al., OSDI 2022, "Orca".
//
// Randomness: generated token i of a request draws from CounterRng({seed, kSampling, 0, i}), so a
// request's output depends only on (weights, prompt, sampling params, seed) -- not on its id, its
// slot or its neighbours. Two requests with the same seed and prompt produce the same tokens.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "model/transformer.h"
#include "serve/adapter_set.h"
#include "serve/kv_cache.h"
#include "serve/sampling.h"

namespace flywheel {

struct CachedChunk;  // serve/cached_forward.h

struct GenerationRequest {
  int64_t id = 0;
  std::vector<int32_t> prompt;  // non-empty; prompt + max_new_tokens <= model.max_seq_len
  SamplingParams sampling;
  uint64_t seed = 0;
  // Multi-LoRA: the adapter of the engine's AdapterSet this sequence is served with ("": the model alone).
  std::string adapter;
};

struct GenerationResult {
  int64_t id = 0;
  std::vector<int32_t> tokens;          // generated tokens only
  std::vector<float> logprobs;          // log softmax(logits / temperature)[token], untruncated distribution
  std::vector<int64_t> snapshot_steps;  // weights' snapshot step under which each token was sampled
  // sampling.top_logprobs > 0: per token, that many most likely ids and their logprobs (as `logprobs`).
  std::vector<std::vector<TokenLogprob>> top_logprobs;
  bool stopped = false;  // ended on a stop token (else max_new_tokens)
};

// A token one step() sampled: what a streaming client is sent as it happens.
struct SampledToken {
  int64_t id = 0;  // the request's
  int32_t token = 0;
  float logprob = 0;
  int64_t snapshot_step = 0;
  std::vector<TokenLogprob> top_logprobs;  // as GenerationResult::top_logprobs
  bool finished = false;                   // the request's last token (its result is among step()'s)
};

class DecodeEngine {
 public:
  // Owns a weights-only Transformer of `config` (weights in `weights`: f32, or bf16 in 2 bytes; no
  // gradients) with forward_kernels forced to "invariant", and a KV cache of max_batch slots.
  DecodeEngine(const ModelConfig& config, int64_t max_batch, DType weights = DType::kF32);

  Transformer& model() { return model_; }  // the caller loads weights into model().params()
  void set_snapshot_step(int64_t step) { snapshot_step_ = step; }
  // Multi-LoRA (serve/adapter_set.h): requests may name an adapter of `adapters`, which must outlive the engine's
  // use of it; each sequence's rows get its own adapter in every step's batch. A named adapter is pinned from
  // submit until its sequence finishes.
  void set_adapters(AdapterSet* adapters) { adapters_ = adapters; }

  // Validates and queues a request (throws naming the bad field, or an adapter that is not loaded).
  void submit(GenerationRequest request);
  // The checks of submit() on the prompt and the sampling parameters (not the adapter); reads only the config, so
  // another thread may call it while this one steps.
  void check(const GenerationRequest& request) const;

  // One iteration: while admitting, moves waiting requests into free slots; then one batched
  // forward over every active sequence's pending tokens (a new sequence's whole prompt, otherwise
  // its newest token), samples one token per sequence, and returns those that finished.
  std::vector<GenerationResult> step();
  // Every token the last step() sampled (a shared prefill's followers after the others).
  const std::vector<SampledToken>& sampled() const { return sampled_; }
  // Drops a waiting or running request (a client gone, a stop string reached): its slot is free for the next
  // step. Returns false when no request has that id (finished already).
  bool cancel(int64_t id);

  // Shared prefill (on by default): sequences admitted in the same step with the same prompt and adapter -- an RL
  // group's G samples -- run the prompt once; the others copy its K/V rows and last-position logits, which are
  // their own bits anyway (a row's results do not depend on the batch with the batch-invariant kernels), and
  // sample from them with their own seed and temperature. Off: every sequence prefills its own prompt.
  void set_shared_prefill(bool shared) { shared_prefill_ = shared; }
  int64_t prefills_shared() const { return prefills_shared_; }  // sequences that copied a prompt's prefill

  void set_admitting(bool admit) { admitting_ = admit; }
  bool admitting() const { return admitting_; }
  int64_t active() const;
  int64_t waiting() const { return static_cast<int64_t>(waiting_.size()); }
  bool idle() const { return active() == 0 && waiting_.empty(); }
  int64_t max_batch() const { return static_cast<int64_t>(slots_.size()); }

  int64_t tokens_generated() const { return tokens_generated_; }
  double busy_seconds() const { return busy_seconds_; }

 private:
  struct Slot {
    bool active = false;
    GenerationRequest request;
    GenerationResult result;
    std::vector<int32_t> sequence;  // prompt + generated
    int64_t cached = 0;             // positions of `sequence` already in the KV cache
  };

  void admit_waiting();
  // The stacked rows of each adapter in this step's chunks (order[c] owns chunk c).
  std::vector<RowAdapterGroup> adapter_groups(const std::vector<CachedChunk>& chunks, const std::vector<Slot*>& order);
  // Samples slot s's next token from its scaled logits row; returns whether the sequence finished.
  bool sample_into(Slot& slot, float* scaled_logits);
  // A fresh sequence of this step with `slot`'s prompt and adapter among chunks (its index), or -1.
  int64_t prefill_leader(const Slot& slot, const std::vector<CachedChunk>& chunks,
                         const std::vector<Slot*>& order) const;
  // A follower's K/V rows [0, positions) from its leader's slot.
  void copy_prefill(int64_t from_slot, int64_t to_slot, int64_t positions);
  float token_logprob(float* scaled_logits, int32_t token);  // cross_entropy takes a writable row; unchanged here

  ModelConfig config_;
  Transformer model_;
  KvCache cache_;
  std::vector<Slot> slots_;
  std::deque<GenerationRequest> waiting_;
  std::vector<SampledToken> sampled_;
  AdapterSet* adapters_ = nullptr;
  bool admitting_ = true;
  bool shared_prefill_ = true;
  int64_t prefills_shared_ = 0;
  int64_t snapshot_step_ = 0;
  int64_t tokens_generated_ = 0;
  double busy_seconds_ = 0;
};

// Log-probabilities of tokens[first .. end) given their prefixes (first >= 1), by the trainer's
// full-sequence forward at logit scale 1 / temperature: reference-model scoring, and the oracle the
// engine is tested against. Restores the model's previous logit scale.
std::vector<float> score_tokens(Transformer& model, const std::vector<int32_t>& tokens, int64_t first,
                                float temperature = 1.0f);

}  // namespace flywheel
