// Unicode regular expressions for the pre-tokenizers, on PCRE2.
//
// The Hugging Face library runs its Split patterns on Oniguruma (the `onig` crate), a backtracking
// engine with Unicode classes. PCRE2 compiled with PCRE2_UTF | PCRE2_UCP is the same kind of
// engine: leftmost-first alternation, lookahead for \s+(?!\S), \p{L}/\p{N} by general category,
// \s as White_Space (U+0085 included, U+FEFF not), and (?i:...) with Unicode case folding (so
// (?i:'s) also matches "'ſ", as Oniguruma does). PCRE2 10.42's tables are Unicode 14.0.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace flywheel {

class Regex {
 public:
  // Compiles `pattern` (a literal string when `literal`), JIT-compiled where PCRE2 can. A bad
  // pattern throws naming `where` (e.g. the file and JSON path it came from) and PCRE2's message.
  Regex(std::string_view pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(Regex&&) noexcept;
  Regex& operator=(Regex&&) noexcept;

  // Calls on_match(begin, end) for each non-empty, non-overlapping match, left to right, in valid
  // UTF-8 `text`. An empty match advances the search by one character (and is not reported).
  template <typename OnMatch>
  void for_each_match(std::string_view text, OnMatch&& on_match) const {
    size_t from = 0, begin = 0, end = 0;
    while (from <= text.size() && next_match(text, from, &begin, &end)) {
      if (end > begin) {
        on_match(begin, end);
        from = end;
      } else {
        from = begin + (begin < text.size() ? char_length(text, begin) : 1);
      }
    }
  }

  // True when the whole of `text` (valid UTF-8) matches.
  bool matches_whole(std::string_view text) const;

 private:
  bool next_match(std::string_view text, size_t from, size_t* begin, size_t* end) const;
  static size_t char_length(std::string_view text, size_t at);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string where_;
};

// Character classes of the Rust `regex` crate, which the HF library uses to decide how an added
// token's lstrip / rstrip / single_word apply: \s is White_Space, \w is
// [\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]. Answered by PCRE2's Unicode properties.
bool is_white_space(char32_t code_point);
bool is_word_character(char32_t code_point);

}  // namespace flywheel
