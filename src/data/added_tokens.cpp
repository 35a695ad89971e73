#include "data/added_tokens.h"

#include <algorithm>

#include "data/regex.h"
#include "core/utf8.h"

namespace flywheel::hf {
namespace {

bool word_before(std::string_view text, size_t at) {
  return at > 0 && is_word_character(utf8::decode_before(text, at));
}

bool word_after(std::string_view text, size_t at) {
  return at < text.size() && is_word_character(utf8::decode_at(text, at));
}

// Where the run of whitespace that ends at text[end) begins.
size_t whitespace_run_begin(std::string_view text, size_t end) {
  while (end > 0) {
    size_t length = 0;
    if (!is_white_space(utf8::decode_before(text, end, &length))) break;
    end -= length;
  }
  return end;
}

// Where the run of whitespace that starts at text[begin] ends.
size_t whitespace_run_end(std::string_view text, size_t begin) {
  while (begin < text.size()) {
    size_t length = 0;
    if (!is_white_space(utf8::decode_at(text, begin, &length))) break;
    begin += length;
  }
  return begin;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(const std::vector<AddedToken>& tokens, const std::vector<std::string>& patterns)
    : tokens_(tokens) {
  for (size_t index = 0; index < patterns.size(); ++index) {
    int32_t node = 0;
    for (char c : patterns[index]) {
      const auto byte = static_cast<unsigned char>(c);
      auto& children = trie_[node].children;
      const auto child = std::find_if(children.begin(), children.end(), [&](const auto& e) { return e.first == byte; });
      if (child != children.end()) {
        node = child->second;
      } else {
        const auto created = static_cast<int32_t>(trie_.size());
        trie_[node].children.emplace_back(byte, created);
        trie_.emplace_back();
        node = created;
      }
    }
    // Two tokens with one pattern (possible after normalization): the first keeps it.
    if (node != 0 && trie_[node].token < 0) trie_[node].token = static_cast<int32_t>(index);
    if (!patterns[index].empty()) first_byte_[static_cast<unsigned char>(patterns[index][0])] = true;
  }
}

int32_t AddedTokenMatcher::longest_at(std::string_view text, size_t at, size_t* length) const {
  int32_t node = 0, found = -1;
  for (size_t k = at; k < text.size(); ++k) {
    const auto byte = static_cast<unsigned char>(text[k]);
    const auto& children = trie_[node].children;
    const auto child = std::find_if(children.begin(), children.end(), [&](const auto& e) { return e.first == byte; });
    if (child == children.end()) break;
    node = child->second;
    if (trie_[node].token >= 0) {
      found = trie_[node].token;
      *length = k + 1 - at;
    }
  }
  return found;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<TextSpan>& out) const {
  size_t previous_end = 0;
  size_t at = 0;
  while (at < text.size()) {
    size_t length = 0;
    const int32_t index = first_byte_[static_cast<unsigned char>(text[at])] ? longest_at(text, at, &length) : -1;
    if (index < 0) {
      ++at;  // patterns are valid UTF-8, so none can start on a continuation byte
      continue;
    }
    const AddedToken& token = tokens_[index];
    size_t begin = at, end = at + length;
    at = end;  // whether or not the match is kept, the scan resumes after it
    if (token.single_word && (word_before(text, begin) || word_after(text, end))) continue;
    if (token.lstrip) begin = std::max(whitespace_run_begin(text, begin), previous_end);
    if (token.rstrip) at = end = whitespace_run_end(text, end);
    if (previous_end < begin) out.push_back(TextSpan{previous_end, begin, -1});
    out.push_back(TextSpan{begin, end, token.id});
    previous_end = end;
  }
  if (previous_end < text.size()) out.push_back(TextSpan{previous_end, text.size(), -1});
}

}  // namespace flywheel::hf
