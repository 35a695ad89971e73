// The Python string methods that Hugging Face chat templates call, with Python's semantics: transformers
// renders templates with Jinja2, where `s.lstrip('\n')` strips only newlines and the `trim` filter is
// str.strip(), which strips Python's whitespace (str.isspace: U+0009-000D, U+001C-001F, U+0020, U+0085,
// U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000; not U+FEFF). The chat formats
// (data/chat_format.h) must render what transformers renders, so these are the reference, not JavaScript's
// trim(). Bytes that are not UTF-8 are never whitespace.
#pragma once

#include <string_view>

namespace flywheel::py {

// str.strip() / lstrip() / rstrip() without arguments: Python's whitespace at the ends.
std::string_view strip(std::string_view text);
std::string_view lstrip(std::string_view text);
std::string_view rstrip(std::string_view text);

// str.strip(c) / lstrip(c) / rstrip(c) with a one-character (ASCII) argument.
std::string_view strip(std::string_view text, char c);
std::string_view lstrip(std::string_view text, char c);
std::string_view rstrip(std::string_view text, char c);

bool is_space(char32_t code_point);  // str.isspace() of one character

}  // namespace flywheel::py
