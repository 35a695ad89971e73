// The `post_processor` of tokenizer.json: the special tokens wrapped around an encoded text when
// add_special_tokens is set.
//
// Supported: TemplateProcessing (its "single" template: special tokens before and after the
// sequence $A; Llama-3's is <|begin_of_text|> $A), ByteLevel (changes offsets only, so no ids:
// Qwen's), "Sequence" (each processor wraps the result of the one before), and null. The "pair"
// template is not used: Flywheel encodes one text at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "data/hf_json.h"

namespace flywheel::hf {

class PostProcessor {
 public:
  // `known_id` says whether an id exists in the tokenizer; a template naming any other is an error.
  static PostProcessor from_json(const std::optional<JsonCursor>& spec, const std::function<bool(int64_t)>& known_id);

  // Wraps `ids` in place when add_special_tokens is set.
  void apply(std::vector<int32_t>& ids, bool add_special_tokens) const;

  // The first id the template puts before the text, if any (the BOS of Llama-3).
  std::optional<int32_t> leading_id() const;

 private:
  void append(const JsonCursor& spec, const std::function<bool(int64_t)>& known_id);
  void append_template(const JsonCursor& spec, const std::function<bool(int64_t)>& known_id);

  std::vector<int32_t> prefix_;
  std::vector<int32_t> suffix_;
};

}  // namespace flywheel::hf
