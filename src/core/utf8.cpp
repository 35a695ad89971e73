#include "core/utf8.h"

namespace flywheel::utf8 {
namespace {

// The well-formed byte sequences of Unicode Table 3-7: a lead byte fixes how many continuation
// bytes follow and narrows the range of the first one (E0/F0 exclude overlongs, ED surrogates, F4
// code points above U+10FFFF). Returns the length of the well-formed sequence at text[at], or 0;
// on 0, *bad receives the length of the maximal ill-formed subpart (at least 1).
size_t well_formed_length(std::string_view text, size_t at, size_t* bad) {
  const auto lead = static_cast<unsigned char>(text[at]);
  if (lead < 0x80) return 1;
  size_t continuations = 0;
  unsigned char low = 0x80, high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    continuations = 1;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    continuations = 2;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    continuations = 3;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    *bad = 1;  // a stray continuation byte, C0/C1, or F5..FF
    return 0;
  }
  size_t k = 1;
  for (; k <= continuations && at + k < text.size(); ++k) {
    const auto byte = static_cast<unsigned char>(text[at + k]);
    if (byte < low || byte > high) break;
    low = 0x80;
    high = 0xBF;
  }
  if (k > continuations) return k;
  *bad = k;
  return 0;
}

}  // namespace

size_t well_formed_length(std::string_view text, size_t at) {
  size_t bad = 0;
  return well_formed_length(text, at, &bad);
}

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  auto escape = [&out](unsigned char byte) {
    char hex[5];
    std::snprintf(hex, sizeof(hex), "\\x%02X", byte);
    out += hex;
  };
  size_t at = 0;
  while (at < text.size()) {
    const auto byte = static_cast<unsigned char>(text[at]);
    if (byte < 0x80) {
      if ((byte < 0x20 && byte != '\n' && byte != '\t') || byte == 0x7F)
        escape(byte);
      else
        out += static_cast<char>(byte);
      ++at;
      continue;
    }
    size_t bad = 0;
    const size_t length = well_formed_length(text, at, &bad);
    if (length > 0) {
      out.append(text.substr(at, length));
      at += length;
    } else {
      for (size_t k = 0; k < bad; ++k) escape(static_cast<unsigned char>(text[at + k]));
      at += bad;
    }
  }
  return out;
}

bool is_valid(std::string_view text) {
  size_t at = 0;
  while (at < text.size()) {
    if (static_cast<unsigned char>(text[at]) < 0x80) {
      ++at;
      continue;
    }
    size_t bad = 0;
    const size_t length = well_formed_length(text, at, &bad);
    if (length == 0) return false;
    at += length;
  }
  return true;
}

std::string repair(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 8);
  size_t at = 0;
  while (at < text.size()) {
    size_t bad = 0;
    const size_t length = well_formed_length(text, at, &bad);
    if (length > 0) {
      out.append(text.substr(at, length));
      at += length;
    } else {
      out.append(kReplacement);
      at += bad;
    }
  }
  return out;
}

char32_t decode_at(std::string_view text, size_t at, size_t* length) {
  const auto lead = static_cast<unsigned char>(text[at]);
  const size_t n = sequence_length(lead);
  if (length) *length = n;
  if (n == 1) return lead;
  char32_t code_point = lead & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) code_point = (code_point << 6) | (static_cast<unsigned char>(text[at + k]) & 0x3F);
  return code_point;
}

char32_t decode_before(std::string_view text, size_t end, size_t* length) {
  size_t start = end - 1;
  while (start > 0 && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
  if (length) *length = end - start;
  return decode_at(text, start);
}

void append(std::string& out, char32_t code_point) {
  if (code_point < 0x80) {
    out.push_back(static_cast<char>(code_point));
  } else if (code_point < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (code_point >> 6)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else if (code_point < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (code_point >> 12)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (code_point >> 18)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((code_point >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (code_point & 0x3F)));
  }
}

}  // namespace flywheel::utf8
