// Python's str.strip family: see py_strings.h.
#include "data/py_strings.h"

#include "core/utf8.h"

namespace flywheel::py {

bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {

// The length of the code point at `at` when it is well-formed whitespace, else 0.
size_t space_at(std::string_view text, size_t at) {
  const size_t length = utf8::well_formed_length(text, at);
  return length > 0 && is_space(utf8::decode_at(text, at)) ? length : 0;
}

// The length of the code point ending at `end` when it is well-formed whitespace, else 0: a well-formed
// sequence of 1..4 bytes that ends there (continuation bytes never start one, so at most one length fits).
size_t space_before(std::string_view text, size_t end) {
  for (size_t length = 1; length <= 4 && length <= end; ++length)
    if (utf8::well_formed_length(text, end - length) == length)
      return is_space(utf8::decode_at(text, end - length)) ? length : 0;
  return 0;
}

}  // namespace

std::string_view lstrip(std::string_view text) {
  size_t begin = 0;
  while (begin < text.size())
    if (const size_t length = space_at(text, begin))
      begin += length;
    else
      break;
  return text.substr(begin);
}

std::string_view rstrip(std::string_view text) {
  size_t end = text.size();
  while (end > 0)
    if (const size_t length = space_before(text, end))
      end -= length;
    else
      break;
  return text.substr(0, end);
}

std::string_view strip(std::string_view text) { return rstrip(lstrip(text)); }

std::string_view lstrip(std::string_view text, char c) {
  const size_t begin = text.find_first_not_of(c);
  return begin == std::string_view::npos ? std::string_view() : text.substr(begin);
}

std::string_view rstrip(std::string_view text, char c) {
  const size_t last = text.find_last_not_of(c);
  return last == std::string_view::npos ? std::string_view() : text.substr(0, last + 1);
}

std::string_view strip(std::string_view text, char c) { return rstrip(lstrip(text, c), c); }

}  // namespace flywheel::py
