// The `decoder` of tokenizer.json: token strings back to text.
//
// Supported: ByteLevel (Qwen, Llama-3): each token's characters are mapped back to the bytes they
// stand for — a token with any character outside the byte-level alphabet (an added token with a
// space, say) contributes its own UTF-8 bytes instead — and the bytes are read as UTF-8 with each
// ill-formed subsequence replaced by U+FFFD, as Rust's from_utf8_lossy does. "Sequence" chains
// decoders; null joins the tokens with spaces (the HF library's behaviour without a decoder).
//
// Like the HF library's Tokenizer::decode, and unlike transformers' PreTrainedTokenizer.decode, no
// clean_up_tokenization_spaces is applied (a tokenizer_config.json setting, true for Llama-3, that
// rewrites " ." to "." and so breaks round trips).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "data/hf_json.h"

namespace flywheel::hf {

class Decoder {
 public:
  static Decoder from_json(const std::optional<JsonCursor>& spec);
  std::string decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { kByteLevel };
  static void append_kinds(const JsonCursor& spec, std::vector<Kind>& kinds);
  std::vector<Kind> chain_;
};

// The ByteLevel decoder's rule on its own: token strings -> text (see above).
std::string byte_level_decode(const std::vector<std::string>& tokens);

}  // namespace flywheel::hf
