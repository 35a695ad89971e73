// Byte-level tokenizer: every byte is its own token, plus three specials.
//
// Bytes keep the vocabulary tiny (259) and make every string encodable, which is what a
// from-scratch post-training system with synthetic tasks needs; there is nothing to train.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flywheel {

class ByteTokenizer {
 public:
  static constexpr int32_t kBos = 256;  // start of every sequence
  static constexpr int32_t kEos = 257;  // end of a completion; generation stops here
  static constexpr int32_t kPad = 258;  // fills batch positions past a sequence's end
  static constexpr int32_t kVocabSize = 259;

  // One token per byte (0..255), no specials added.
  static std::vector<int32_t> encode(std::string_view text);

  // Inverse of encode. BOS and PAD are skipped, decoding stops at the first EOS, and ids
  // outside [0, kVocabSize) are skipped rather than rejected: decode is applied to model
  // samples, and a sampler bug should show up as missing text, not abort a long run.
  static std::string decode(const std::vector<int32_t>& ids);

  // SFT sequence BOS + prompt + completion + EOS. *loss_start (if given) receives the index of
  // the first token whose prediction counts in the loss: 1 + prompt bytes, i.e. the first
  // completion byte (or EOS when the completion is empty).
  static std::vector<int32_t> encode_sft(std::string_view prompt, std::string_view completion,
                                         int64_t* loss_start);
};

// Throws unless a model of `vocab_size` ids (model.vocab_size) has room for every byte token.
void check_byte_vocabulary(int64_t vocab_size);

}  // namespace flywheel
