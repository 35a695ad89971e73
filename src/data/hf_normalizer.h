// The `normalizer` of tokenizer.json: Unicode normalization forms, on utf8proc.
//
// Supported: null (none: Llama-3), {"type":"NFC"} (Qwen2/3), NFD, NFKC, NFKD, and a "Sequence" of
// these ({"type":"Sequence","normalizers":[...]}), applied in order. The HF library normalizes each
// stretch of text between added tokens on its own (so a combining mark right after <|im_end|> stays
// uncombined); the caller does the same by calling apply() per stretch.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/hf_json.h"

namespace flywheel::hf {

enum class NormalizationForm { kNfc, kNfd, kNfkc, kNfkd };

class Normalizer {
 public:
  // The normalizer `spec` describes (nullopt: the identity). Unknown types fail naming what is allowed.
  static Normalizer from_json(const std::optional<JsonCursor>& spec);

  bool is_identity() const { return forms_.empty(); }
  // `text` (valid UTF-8) under each form in turn.
  std::string apply(std::string_view text) const;

 private:
  std::vector<NormalizationForm> forms_;
  static void append_forms(const JsonCursor& spec, std::vector<NormalizationForm>& forms);
};

// `text` (valid UTF-8) in one normalization form.
std::string normalize_unicode(std::string_view text, NormalizationForm form);

}  // namespace flywheel::hf
