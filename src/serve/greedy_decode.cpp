#include "serve/greedy_decode.h"

#include "core/buffer.h"
#include "core/error.h"

namespace flywheel {

std::vector<int32_t> greedy_decode(Transformer& model, const std::vector<int32_t>& prompt, int64_t max_new_tokens,
                                   int32_t stop_token) {
  FW_CHECK(!prompt.empty(), "greedy_decode needs a non-empty prompt");
  const int64_t vocab = model.config().vocab_size;
  std::vector<int32_t> sequence = prompt, generated;
  Buffer<float> logits;
  while (static_cast<int64_t>(generated.size()) < max_new_tokens &&
         static_cast<int64_t>(sequence.size()) < model.config().max_seq_len) {
    const auto seq = static_cast<int64_t>(sequence.size());
    logits.resize(seq * vocab);
    model.forward_logits(sequence.data(), 1, seq, logits.data());
    const float* last = logits.data() + (seq - 1) * vocab;
    int32_t best = 0;
    for (int32_t id = 1; id < vocab; ++id)
      if (last[id] > last[best]) best = id;
    sequence.push_back(best);
    generated.push_back(best);
    if (best == stop_token) break;
  }
  return generated;
}

}  // namespace flywheel
