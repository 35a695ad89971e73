// The `added_tokens` of tokenizer.json (the special tokens <|im_start|>, <|eot_id|>, ... and the
// non-special ones such as Qwen's <think>), and how they are found in text before anything else.
//
// Matching is the HF library's AddedVocabulary: leftmost, then longest, non-overlapping. Tokens with
// normalized == false are matched in the raw text; those with normalized == true in each stretch
// after normalization (against their own normalized content). Per token:
//   single_word: a match touching a word character (Rust regex \w) on either side is discarded
//                (the scan resumes after it, as Aho-Corasick's iterator does);
//   lstrip / rstrip: the whitespace (\s) before / after the match is swallowed by the token.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace flywheel::hf {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;  // the HF default for a token the file does not mark
  bool special = false;
};

// A piece of a split text: [begin, end) and the added token it is (id), or -1 for plain text.
struct TextSpan {
  size_t begin;
  size_t end;
  int32_t id;
};

class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // Matches `patterns[i]` as `tokens[i]` (the pattern is the content, or its normalized form).
  AddedTokenMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns);

  bool empty() const { return tokens_.empty(); }
  // Splits `text` (valid UTF-8) into spans covering it; empty plain spans are left out.
  void split(std::string_view text, std::vector<TextSpan>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> children;
    int32_t token = -1;  // index into tokens_ of the pattern ending here
  };
  // The longest pattern starting at text[at]: its index into tokens_ and its length, or -1.
  int32_t longest_at(std::string_view text, size_t at, size_t* length) const;

  std::vector<AddedToken> tokens_;
  std::vector<Node> trie_{Node{}};
  std::array<bool, 256> first_byte_{};  // bytes a pattern can start with: the scan skips the rest
};

}  // namespace flywheel::hf
