#include "serve/cached_forward.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "model/moe_block.h"
#include "ops/attention.h"
#include "ops/embedding.h"
#include "ops/linear_invariant.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"

namespace flywheel {
namespace {

// Row offsets of the chunks in the stacked [N, d] matrix; the last entry is N.
std::vector<int64_t> chunk_rows(const std::vector<CachedChunk>& chunks) {
  std::vector<int64_t> first{0};
  for (const CachedChunk& c : chunks) first.push_back(first.back() + c.count);
  return first;
}

void check_chunks(const ModelConfig& cfg, const KvCache& cache, const std::vector<CachedChunk>& chunks) {
  for (const CachedChunk& c : chunks) {
    FW_CHECK(c.count >= 1 && c.start >= 0 && c.start + c.count <= cfg.max_seq_len, "cached_forward: chunk of ",
             c.count, " tokens at position ", c.start, " does not fit in model.max_seq_len = ", cfg.max_seq_len);
    FW_CHECK(c.slot >= 0 && c.slot < cache.slots(), "cached_forward: slot ", c.slot, " outside [0, ",
             cache.slots(), ")");
  }
}

// Attention for the chunks of one layer: RoPE at each chunk's positions, K/V appended to the
// cache, then the chunk's queries against keys [0, start + count) of its slot.
void cached_attention(const ModelConfig& cfg, const ops::RopeTable<float>& rope, KvCache& cache, int layer,
                      const std::vector<CachedChunk>& chunks, const std::vector<int64_t>& first, float* q,
                      float* k, float* v, float* attn) {
  const int64_t hd = cfg.resolved_head_dim(), qw = cfg.n_heads * hd, kvw = cfg.n_kv_heads * hd;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const CachedChunk& ch = chunks[c];
    const int64_t r0 = first[c];
    std::vector<int64_t> positions(static_cast<size_t>(ch.count));
    for (int64_t t = 0; t < ch.count; ++t) positions[t] = ch.start + t;
    ops::rope_apply_at(rope, q + r0 * qw, 1, ch.count, cfg.n_heads, positions.data());
    ops::rope_apply_at(rope, k + r0 * kvw, 1, ch.count, cfg.n_kv_heads, positions.data());
    float* keys = cache.keys(layer, ch.slot);
    float* values = cache.values(layer, ch.slot);
    std::memcpy(keys + ch.start * kvw, k + r0 * kvw, sizeof(float) * ch.count * kvw);
    std::memcpy(values + ch.start * kvw, v + r0 * kvw, sizeof(float) * ch.count * kvw);
    ops::AttentionShape shape{1, ch.count, cfg.n_heads, cfg.n_kv_heads, hd, ch.start + ch.count, ch.start};
    std::vector<float> lse(static_cast<size_t>(cfg.n_heads * ch.count));
    ops::attention_forward(shape, q + r0 * qw, keys, values, attn + r0 * qw, lse.data());
  }
}

// Scratch for one layer over N stacked rows.
struct LayerScratch {
  Buffer<float> normed, rstd, q, k, v, attn, x_mid, y;
  SwiGluActivations dense;
  MoeActivations moe;
  LayerScratch(const ModelConfig& cfg, int64_t n) {
    const int64_t d = cfg.d_model, hd = cfg.resolved_head_dim();
    normed.resize(n * d);
    rstd.resize(n);
    q.resize(n * cfg.n_heads * hd);
    k.resize(n * cfg.n_kv_heads * hd);
    v.resize(n * cfg.n_kv_heads * hd);
    attn.resize(n * cfg.n_heads * hd);
    x_mid.resize(n * d);
    y.resize(n * d);
  }
};

// x <- layer(x) over the N stacked rows, the same ops in the same order as Transformer::layer_forward.
void cached_layer(const Transformer& model, KvCache& cache, int layer, const std::vector<CachedChunk>& chunks,
                  const std::vector<int64_t>& first, float* x, LayerScratch& s) {
  const ModelConfig& cfg = model.config();
  const int64_t n = first.back(), d = cfg.d_model, hd = cfg.resolved_head_dim();
  const int64_t qw = cfg.n_heads * hd, kvw = cfg.n_kv_heads * hd;
  const AttentionWeights w = model.attention_weights(layer);
  ops::rmsnorm_forward(x, w.norm, s.normed.data(), s.rstd.data(), n, d, cfg.norm_eps);
  ops::linear_forward_invariant(s.normed.data(), w.q, s.q.data(), n, d, qw);
  ops::linear_forward_invariant(s.normed.data(), w.k, s.k.data(), n, d, kvw);
  ops::linear_forward_invariant(s.normed.data(), w.v, s.v.data(), n, d, kvw);
  cached_attention(cfg, model.rope(), cache, layer, chunks, first, s.q.data(), s.k.data(), s.v.data(),
                   s.attn.data());
  attention_output_residual(true, s.attn.data(), w.o, x, s.x_mid.data(), n, d, qw);

  ops::rmsnorm_forward(s.x_mid.data(), model.post_attention_norm(layer), s.normed.data(), s.rstd.data(), n, d,
                       cfg.norm_eps);
  if (cfg.is_moe())
    moe_block_forward(cfg, model.moe_weights(layer), s.normed.data(), s.y.data(), n, s.moe);
  else
    swiglu_ffn_forward(model.dense_ffn_weights(layer), s.normed.data(), s.y.data(), n, d, cfg.d_ff, s.dense, true);
  const float* x_mid = s.x_mid.data();
  const float* y = s.y.data();
#pragma omp parallel for simd schedule(static)
  for (int64_t i = 0; i < n * d; ++i) x[i] = x_mid[i] + y[i];
}

}  // namespace

void cached_forward(const Transformer& model, KvCache& cache, const std::vector<CachedChunk>& chunks,
                    Buffer<float>& last_hidden) {
  const ModelConfig& cfg = model.config();
  FW_CHECK(cfg.invariant_forward(), "cached_forward needs model.forward_kernels = 'invariant', got '",
           cfg.forward_kernels, "': only then do decode steps reproduce the full-sequence forward's bits");
  FW_CHECK(model.stage().first_layer == 0 && model.stage().has_head(cfg.n_layers),
           "cached_forward runs the whole model; this Transformer holds only a pipeline stage");
  check_chunks(cfg, cache, chunks);
  const std::vector<int64_t> first = chunk_rows(chunks);
  const int64_t n = first.back(), d = cfg.d_model, m = static_cast<int64_t>(chunks.size());
  std::vector<int32_t> tokens;
  for (const CachedChunk& c : chunks) tokens.insert(tokens.end(), c.tokens, c.tokens + c.count);
  Buffer<float> x(n * d);
  ops::embedding_forward(model.embedding(), tokens.data(), x.data(), n, d, cfg.vocab_size);
  LayerScratch scratch(cfg, n);
  for (int l = 0; l < cfg.n_layers; ++l) cached_layer(model, cache, l, chunks, first, x.data(), scratch);

  // Final norm of each chunk's last row only (RMSNorm is per row).
  Buffer<float> last(m * d), rstd(m);
  for (int64_t c = 0; c < m; ++c) std::copy_n(x.data() + (first[c + 1] - 1) * d, d, last.data() + c * d);
  last_hidden.resize(m * d);
  ops::rmsnorm_forward(last.data(), model.final_norm(), last_hidden.data(), rstd.data(), m, d, cfg.norm_eps);
}

}  // namespace flywheel
