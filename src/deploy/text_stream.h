// Generated token ids -> the text a client is sent, as it grows: stop strings and partial characters.
//
// Each append decodes the whole completion so far (special tokens skipped, as vLLM's default) and releases the text
// that can no longer change: a trailing U+FFFD (or the lead bytes of a character, from a tokenizer that decodes raw
// bytes) may be the first bytes of a character the next token completes, and a
// tail that begins a stop string may become one. When a stop string appears, the text ends just before it (OpenAI's
// rule: the stop sequence is not returned) and stop_hit() turns true; the caller cancels the sequence.
// Byte-level BPE (Qwen3, Llama-3) decodes a prefix of the ids to a prefix of the text, which is what makes releasing
// text early sound.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace flywheel {

class TextStream {
 public:
  TextStream(const Tokenizer& tokenizer, std::vector<std::string> stops);

  // Adds generated ids; returns the text released by them (maybe empty). After a stop string, adds nothing.
  std::string append(std::span<const int32_t> ids);
  // The end of generation: releases what was held back (a stop string's beginning that never completed).
  std::string finish();

  bool stop_hit() const { return stop_hit_; }
  // How many of the appended ids the text used: all of them, or those up to the one completing the stop string.
  int64_t ids_used() const { return static_cast<int64_t>(ids_.size()); }
  const std::string& text() const { return released_; }

 private:
  std::string decoded() const;

  const Tokenizer& tokenizer_;
  std::vector<std::string> stops_;
  std::vector<int32_t> ids_;
  std::string released_;
  bool stop_hit_ = false;
};

}  // namespace flywheel
