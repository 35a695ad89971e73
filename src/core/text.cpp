#include "core/text.h"

#include <cstdint>

namespace flywheel {
namespace {

bool is_text_control(unsigned char c) { return c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

struct Lead {
  size_t length;     // bytes of the sequence; 0: not a lead byte
  uint32_t bits;     // the code point bits the lead byte carries
  uint32_t minimum;  // the smallest code point of this length (shorter forms are overlong)
};

Lead lead_of(unsigned char c) {
  if (c < 0x80) return {1, c, 0};
  if ((c & 0xe0) == 0xc0) return {2, c & 0x1fu, 0x80};
  if ((c & 0xf0) == 0xe0) return {3, c & 0x0fu, 0x800};
  if ((c & 0xf8) == 0xf0) return {4, c & 0x07u, 0x10000};
  return {0, 0, 0};
}

// Bytes of the UTF-8 sequence starting at bytes[i], or 0 when it is not a valid one (overlong
// forms, surrogates and code points past U+10FFFF included).
size_t utf8_sequence_length(std::string_view bytes, size_t i) {
  const Lead lead = lead_of(static_cast<unsigned char>(bytes[i]));
  if (lead.length == 0 || i + lead.length > bytes.size()) return 0;
  uint32_t code = lead.bits;
  for (size_t k = 1; k < lead.length; ++k) {
    const auto next = static_cast<unsigned char>(bytes[i + k]);
    if ((next & 0xc0) != 0x80) return 0;
    code = (code << 6) | (next & 0x3fu);
  }
  const bool surrogate = code >= 0xd800 && code <= 0xdfff;
  return code < lead.minimum || code > 0x10ffff || surrogate ? 0 : lead.length;
}

}  // namespace

std::optional<size_t> first_non_text_byte(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if ((c < 0x20 && !is_text_control(c)) || c == 0x7f) return i;
    const size_t length = utf8_sequence_length(bytes, i);
    if (length == 0) return i;
    i += length;
  }
  return std::nullopt;
}

}  // namespace flywheel
