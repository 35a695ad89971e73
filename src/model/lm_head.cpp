// The last stage's end of the forward path: final norm, LM head and cross-entropy.
//
// The head runs only where it matters. A position whose loss weight is 0 adds nothing to the loss or
// to any gradient (its dlogits are 0 * (softmax - onehot) = 0), and a logprob pass needs only the
// positions its caller reads. So every head pass gathers the final-normed rows of the positions it
// wants into [k, d] and runs the head over those k rows, in chunks of kHeadChunkFloats / vocab rows
// fused with the cross-entropy: a chunk's logits become its dlogits in place, so the [tokens, vocab]
// matrix never exists whole. Chat and task rows weight only the replies (on the Qwen3 chat shape 3 to
// 10 of a row's 48 positions), and at vocab 151,936 the head is most of a step's arithmetic.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "model/transformer.h"

namespace flywheel {
namespace {
// LM-head chunk: rows * vocab floats of logits live at once (16 Mi floats = 64 MiB).
constexpr int64_t kHeadChunkFloats = int64_t{1} << 24;

int64_t head_chunk_rows(int64_t n, int64_t vocab) {
  return std::clamp<int64_t>(kHeadChunkFloats / vocab, 1, std::max<int64_t>(n, 1));
}

// The positions in [0, n) whose weight is nonzero, in order; all of them when weight is null.
std::vector<int64_t> weighted_positions(const float* weight, int64_t n) {
  std::vector<int64_t> at;
  at.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (!weight || weight[i] != 0.0f) at.push_back(i);
  return at;
}

// The head's input: the rows `at` of final_normed [n, d], gathered (a view when `at` is every row).
struct HeadRows {
  Buffer<float> gathered;
  const float* h = nullptr;
  HeadRows(Backend& backend, const Buffer<float>& final_normed, const std::vector<int64_t>& at, int64_t n, int64_t d) {
    const int64_t k = static_cast<int64_t>(at.size());
    if (k == n) {
      h = final_normed.data();
      return;
    }
    gathered.resize(k * d);
    backend.gather_rows(final_normed.data(), at.data(), gathered.data(), k, d);
    h = gathered.data();
  }
};

// v[at[i]] for every i.
template <typename T>
std::vector<T> pick(const T* v, const std::vector<int64_t>& at) {
  std::vector<T> out(at.size());
  for (size_t i = 0; i < at.size(); ++i) out[i] = v[at[i]];
  return out;
}
}  // namespace

void Transformer::head_forward(ActivationStash& stash) {
  const int64_t n = stash.rows * stash.seq, d = config_.d_model;
  stash.final_normed.resize(n * d);
  stash.final_rstd.resize(n);
  hooks_->before_use(head_unit_, false);
  backend_->rmsnorm(stash.stage_out.data(), weight(final_norm_id_), stash.final_normed.data(), stash.final_rstd.data(),
                    n, d, config_.norm_eps);
  hooks_->after_forward(head_unit_);
}

double Transformer::head_backward(ActivationStash& stash, const int32_t* targets, const float* ce_weight, float* dx,
                                  float* token_logprob) {
  const int64_t n = stash.rows * stash.seq, d = config_.d_model, vocab = config_.vocab_size;
  const int lm_unit = lm_head_unit();
  if (lm_unit != head_unit_) hooks_->before_use(lm_unit, true);
  hooks_->before_use(head_unit_, true);
  // Positions of weight 0 are skipped unless their logprob is asked for.
  FW_CHECK(ce_weight, "head_backward needs the loss weights");
  const std::vector<int64_t> at = weighted_positions(token_logprob ? nullptr : ce_weight, n);
  const int64_t k = static_cast<int64_t>(at.size());
  const HeadRows rows(*backend_, stash.final_normed, at, n, d);
  Buffer<float> dfinal(n * d), dgathered(k == n ? 0 : k * d);
  float* dh = k == n ? dfinal.data() : dgathered.data();
  const std::vector<int32_t> target = pick(targets, at);
  const std::vector<float> weight = pick(ce_weight, at);
  std::vector<float> logprob(token_logprob ? k : 0);
  // LM head + cross-entropy, chunk by chunk; dh = d loss / d (gathered final_normed).
  const int64_t chunk = head_chunk_rows(k, vocab);
  Buffer<float> logits(chunk * vocab);
  double ce = 0;
  for (int64_t r0 = 0; r0 < k; r0 += chunk) {
    const int64_t m = std::min(chunk, k - r0);
    head_chunk_logits(rows.h + r0 * d, logits.data(), m);
    ce += backend_->cross_entropy(logits.data(), target.data() + r0, weight.data() + r0, m, vocab, true,
                                  token_logprob ? logprob.data() + r0 : nullptr);
    // d loss / d (h W^T) = s * d loss / d (s h W^T).
    if (logit_scale_ != 1.0f) backend_->scale_in_place(logits.data(), m * vocab, logit_scale_);
    backend_->linear_backward(rows.h + r0 * d, lm_head().data<float>(), logits.data(), dh + r0 * d, lm_head_grad(), m,
                              d, vocab, false);
  }
  if (k < n) backend_->scatter_rows(dh, at.data(), dfinal.data(), k, d);  // skipped positions stay 0
  for (int64_t i = 0; token_logprob && i < k; ++i) token_logprob[at[i]] = logprob[i];
  backend_->rmsnorm_backward(stash.stage_out.data(), params_.value(final_norm_id_), stash.final_rstd.data(),
                             dfinal.data(), dx, params_.grad(final_norm_id_), n, d);
  hooks_->after_backward(head_unit_);
  if (lm_unit != head_unit_) hooks_->after_backward(lm_unit);
  return ce;
}

void Transformer::head_logits(const float* h, int64_t m, float* logits) {
  backend_->linear(config_.forward_kernel(), h, lm_head(), logits, m, config_.d_model, config_.vocab_size);
}

void Transformer::head_chunk_logits(const float* h, float* logits, int64_t m) {
  head_logits(h, m, logits);
  if (logit_scale_ != 1.0f) backend_->scale_in_place(logits, m * config_.vocab_size, logit_scale_);
}

void Transformer::stage_logprobs(ActivationStash& stash, const int32_t* targets, float* token_logprob,
                                 const float* wanted) {
  FW_CHECK(stage_.has_head(config_.n_layers), "stage_logprobs needs the LM head; this stage ends at layer ",
           stage_.end_layer, " of ", config_.n_layers);
  const int64_t n = stash.rows * stash.seq, d = config_.d_model, vocab = config_.vocab_size;
  const int lm_unit = lm_head_unit();
  hooks_->before_use(lm_unit, false);
  const std::vector<int64_t> at = weighted_positions(wanted, n);
  const int64_t k = static_cast<int64_t>(at.size());
  const HeadRows rows(*backend_, stash.final_normed, at, n, d);
  const std::vector<int32_t> target = pick(targets, at);
  const int64_t chunk = head_chunk_rows(k, vocab);
  Buffer<float> logits(chunk * vocab);
  const std::vector<float> no_weight(static_cast<size_t>(chunk), 0.0f);  // the loss is not wanted
  std::vector<float> logprob(k);
  for (int64_t r0 = 0; r0 < k; r0 += chunk) {
    const int64_t m = std::min(chunk, k - r0);
    head_chunk_logits(rows.h + r0 * d, logits.data(), m);
    backend_->cross_entropy(logits.data(), target.data() + r0, no_weight.data(), m, vocab, false, logprob.data() + r0);
  }
  std::fill(token_logprob, token_logprob + n, 0.0f);
  for (int64_t i = 0; i < k; ++i) token_logprob[at[i]] = logprob[i];
  hooks_->after_forward(lm_unit);
}

}  // namespace flywheel
