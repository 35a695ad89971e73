// Key/value cache of the decode engine: per layer and per slot (one slot per sequence in flight),
// K and V rows for positions [0, max_seq_len), each n_kv_heads * head_dim floats, already rotated by
// RoPE -- exactly the k, v rows the full-sequence forward feeds to attention, so a slot's K for
// positions [0, p] is the [batch 1, seq_k p+1, n_kv_heads, head_dim] operand of ops::attention_forward.
// Everything is allocated up front: 2 * layers * slots * max_seq_len * kv_width floats.
#pragma once

#include <cstdint>

#include "core/buffer.h"
#include "model/config.h"

namespace flywheel {

class KvCache {
 public:
  KvCache(const ModelConfig& config, int64_t slots);

  int64_t slots() const { return slots_; }
  int64_t capacity() const { return capacity_; }  // positions per slot (model.max_seq_len)
  int64_t kv_width() const { return kv_width_; }   // floats per position: n_kv_heads * head_dim

  // [capacity, kv_width] rows of one layer and slot.
  float* keys(int64_t layer, int64_t slot) { return storage_.data() + offset(layer, slot, 0); }
  float* values(int64_t layer, int64_t slot) { return storage_.data() + offset(layer, slot, 1); }

 private:
  int64_t offset(int64_t layer, int64_t slot, int64_t which) const;

  int64_t layers_, slots_, capacity_, kv_width_;
  Buffer<float> storage_;  // [layers, slots, 2 (K, V), capacity, kv_width]
};

}  // namespace flywheel
