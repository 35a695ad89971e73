#include "model/attention_context.h"

#include "backend/backend.h"

namespace flywheel {

std::vector<int64_t> FullSequenceAttention::positions(int64_t batch, int64_t seq) const {
  std::vector<int64_t> positions(static_cast<size_t>(batch * seq));
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t) positions[b * seq + t] = t;
  return positions;
}

void FullSequenceAttention::forward(Backend& backend, int, const AttentionHeads& heads, int64_t batch, int64_t seq,
                                    const float* q, const float* k, const float* v, float* attn, float* lse) {
  backend.attention({batch, seq, heads.n_heads, heads.n_kv_heads, heads.head_dim}, q, k, v, attn, lse);
}

void FullSequenceAttention::backward(Backend& backend, int, const AttentionHeads& heads, int64_t batch, int64_t seq,
                                     const float* q, const float* k, const float* v, const float* attn,
                                     const float* lse, const float* dattn, float* dq, float* dk, float* dv) {
  backend.attention_backward({batch, seq, heads.n_heads, heads.n_kv_heads, heads.head_dim}, q, k, v, attn, lse,
                             dattn, dq, dk, dv);
}

}  // namespace flywheel
