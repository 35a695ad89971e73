// UTF-8: validation, repair of ill-formed input and code point iteration (the tokenizers), and text
// safe to print (messages that quote a user's bytes).
//
// The Hugging Face tokenizers take Rust strings, which are valid UTF-8 by construction; our encode
// takes bytes. Ill-formed input is repaired first, the way every mainstream decoder does it
// (Unicode 15 §3.9 "U+FFFD substitution of maximal subparts", which is also WHATWG's TextDecoder and
// Rust's String::from_utf8_lossy): each maximal ill-formed subsequence becomes one U+FFFD.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace flywheel::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// The byte count of the well-formed sequence at text[at] (1..4), or 0 when an ill-formed one starts
// there (Unicode Table 3-7: no overlongs, surrogates or code points above U+10FFFF).
size_t well_formed_length(std::string_view text, size_t at);

// True when `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool is_valid(std::string_view text);

// `text` with each maximal ill-formed subsequence replaced by U+FFFD; valid input comes back as is.
std::string repair(std::string_view text);

// The number of bytes of the sequence a lead byte of VALID UTF-8 starts (1..4).
inline size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead < 0xE0) return 2;
  if (lead < 0xF0) return 3;
  return 4;
}

// The code point at text[at] of valid UTF-8; *length (if given) receives its byte count.
char32_t decode_at(std::string_view text, size_t at, size_t* length = nullptr);

// The code point that ends at text[end) of valid UTF-8 (end > 0); *length receives its byte count.
char32_t decode_before(std::string_view text, size_t end, size_t* length = nullptr);

// `text` safe for a terminal or a log: well-formed UTF-8 and \n, \t as they are; every other control
// character (C0, DEL) and every byte of an ill-formed sequence as \xHH, so a message that quotes a
// binary file or an escape sequence neither garbles the terminal nor breaks a UTF-8 log reader.
std::string printable(std::string_view text);

// Appends the UTF-8 form of a Unicode scalar value.
void append(std::string& out, char32_t code_point);

}  // namespace flywheel::utf8
