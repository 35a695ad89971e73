#include "serve/cached_forward.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace flywheel {
namespace {

void check_chunks(const ModelConfig& cfg, const KvCache& cache, const std::vector<CachedChunk>& chunks) {
  for (const CachedChunk& c : chunks) {
    FW_CHECK(c.count >= 1 && c.start >= 0 && c.start + c.count <= cfg.max_seq_len, "cached_forward: chunk of ",
             c.count, " tokens at position ", c.start, " does not fit in model.max_seq_len = ", cfg.max_seq_len);
    FW_CHECK(c.slot >= 0 && c.slot < cache.slots(), "cached_forward: slot ", c.slot, " outside [0, ",
             cache.slots(), ")");
  }
}

}  // namespace

CachedAttention::CachedAttention(KvCache& cache, const std::vector<CachedChunk>& chunks)
    : cache_(cache), chunks_(chunks), first_row_{0} {
  for (const CachedChunk& c : chunks) first_row_.push_back(first_row_.back() + c.count);
}

std::vector<int64_t> CachedAttention::positions(int64_t batch, int64_t seq) const {
  FW_CHECK(batch * seq == first_row_.back(), "CachedAttention: ", batch * seq, " rows but the chunks hold ",
           first_row_.back());
  std::vector<int64_t> positions;
  positions.reserve(static_cast<size_t>(first_row_.back()));
  for (const CachedChunk& c : chunks_)
    for (int64_t t = 0; t < c.count; ++t) positions.push_back(c.start + t);
  return positions;
}

void CachedAttention::forward(Backend& backend, int layer, const AttentionHeads& heads, int64_t, int64_t,
                              const float* q, const float* k, const float* v, float* attn, float* lse) {
  const int64_t qw = heads.q_width(), kvw = heads.kv_width();
  for (size_t c = 0; c < chunks_.size(); ++c) {
    const CachedChunk& ch = chunks_[c];
    const int64_t r0 = first_row_[c];
    float* keys = cache_.keys(layer, ch.slot);
    float* values = cache_.values(layer, ch.slot);
    std::memcpy(keys + ch.start * kvw, k + r0 * kvw, sizeof(float) * ch.count * kvw);
    std::memcpy(values + ch.start * kvw, v + r0 * kvw, sizeof(float) * ch.count * kvw);
    const ops::AttentionShape shape{1, ch.count, heads.n_heads, heads.n_kv_heads, heads.head_dim,
                                    ch.start + ch.count, ch.start};
    backend.attention(shape, q + r0 * qw, keys, values, attn + r0 * qw, lse + r0 * heads.n_heads);
  }
}

void CachedAttention::backward(Backend&, int, const AttentionHeads&, int64_t, int64_t, const float*, const float*,
                               const float*, const float*, const float*, const float*, float*, float*, float*) {
  FW_THROW("CachedAttention has no backward: decoding is forward only");
}

void cached_forward(Transformer& model, KvCache& cache, const std::vector<CachedChunk>& chunks,
                    Buffer<float>& last_hidden) {
  const ModelConfig& cfg = model.config();
  FW_CHECK(cfg.invariant_forward(), "cached_forward needs model.forward_kernels = 'invariant', got '",
           cfg.forward_kernels, "': only then do decode steps reproduce the full-sequence forward's bits");
  check_chunks(cfg, cache, chunks);
  std::vector<int32_t> tokens;
  for (const CachedChunk& c : chunks) tokens.insert(tokens.end(), c.tokens, c.tokens + c.count);
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t d = cfg.d_model, m = static_cast<int64_t>(chunks.size());
  CachedAttention attention(cache, chunks);
  ActivationStash stash;
  stash.keep_for_backward = false;
  model.forward_with(stash, tokens.data(), n, 1, attention);  // n rows of one token each: positions are the chunks'
  // The final norm is per row: each chunk's last row of the normed stream is its LM-head input.
  last_hidden.resize(m * d);
  int64_t row = 0;
  for (int64_t c = 0; c < m; ++c) {
    row += chunks[c].count;
    std::copy_n(stash.final_normed.data() + (row - 1) * d, d, last_hidden.data() + c * d);
  }
}

}  // namespace flywheel
