#include "data/byte_level.h"

#include "core/utf8.h"

namespace flywheel {
namespace {

bool stands_for_itself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || (byte >= 0xAE && byte <= 0xFF);
}

}  // namespace

ByteLevelAlphabet::ByteLevelAlphabet() {
  bytes_.fill(-1);
  char32_t next_shifted = 0x100;
  for (int byte = 0; byte < 256; ++byte) {
    const char32_t code_point = stands_for_itself(byte) ? static_cast<char32_t>(byte) : next_shifted++;
    std::string encoded;
    utf8::append(encoded, code_point);
    lengths_[byte] = static_cast<uint8_t>(encoded.size());
    for (size_t k = 0; k < encoded.size(); ++k) symbols_[byte][k] = encoded[k];
    bytes_[code_point] = static_cast<int16_t>(byte);
  }
}

const ByteLevelAlphabet& ByteLevelAlphabet::get() {
  static const ByteLevelAlphabet alphabet;
  return alphabet;
}

void ByteLevelAlphabet::append_symbols(std::string_view bytes, std::string& out) const {
  for (char c : bytes) {
    const auto byte = static_cast<uint8_t>(c);
    out.append(symbols_[byte].data(), lengths_[byte]);
  }
}

}  // namespace flywheel
