#include "serve/kv_cache.h"

#include "core/error.h"

namespace flywheel {

KvCache::KvCache(const ModelConfig& config, int64_t slots)
    : layers_(config.n_layers),
      slots_(slots),
      capacity_(config.max_seq_len),
      kv_width_(config.n_kv_heads * config.resolved_head_dim()) {
  FW_CHECK(slots > 0, "KV cache slots = ", slots, ": the decode engine's max_batch must be >= 1");
  storage_.resize(static_cast<size_t>(layers_ * slots_ * 2 * capacity_ * kv_width_));
}

int64_t KvCache::offset(int64_t layer, int64_t slot, int64_t which) const {
  FW_CHECK(0 <= layer && layer < layers_ && 0 <= slot && slot < slots_, "KV cache: layer ", layer, " / slot ",
           slot, " outside [0, ", layers_, ") x [0, ", slots_, ")");
  return (((layer * slots_ + slot) * 2 + which) * capacity_) * kv_width_;
}

}  // namespace flywheel
