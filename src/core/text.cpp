#include "core/text.h"

#include "core/utf8.h"

namespace flywheel {
namespace {

bool is_text_control(unsigned char c) { return c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

}  // namespace

std::optional<size_t> first_non_text_byte(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if ((c < 0x20 && !is_text_control(c)) || c == 0x7f) return i;
    const size_t length = utf8::well_formed_length(bytes, i);
    if (length == 0) return i;
    i += length;
  }
  return std::nullopt;
}

}  // namespace flywheel
