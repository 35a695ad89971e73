// The byte-level alphabet of GPT-2 (and of every byte-level BPE since: Llama-3, Qwen2/3): each of
// the 256 bytes stands as one printable Unicode character, so that a vocabulary of strings can
// spell any byte sequence. The rule (GPT-2's bytes_to_unicode): the bytes of '!'..'~', '¡'..'¬' and
// '®'..'ÿ' stand for the code point of the same value; the remaining 68 bytes (controls, space,
// DEL, U+0080..U+00A0, the soft hyphen), in increasing order, take U+0100, U+0101, ... — so the
// space is 'Ġ' (U+0120) and the newline 'Ċ' (U+010A).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace flywheel {

class ByteLevelAlphabet {
 public:
  static const ByteLevelAlphabet& get();

  // The UTF-8 of the character standing for `byte`.
  std::string_view symbol(uint8_t byte) const { return {symbols_[byte].data(), lengths_[byte]}; }

  // Appends the characters standing for each byte of `bytes`.
  void append_symbols(std::string_view bytes, std::string& out) const;

  // The byte that `code_point` stands for, or -1 when it is not in the alphabet.
  int byte_of(char32_t code_point) const {
    return code_point < bytes_.size() ? bytes_[code_point] : -1;
  }

 private:
  ByteLevelAlphabet();
  std::array<std::array<char, 2>, 256> symbols_{};
  std::array<uint8_t, 256> lengths_{};
  std::array<int16_t, 512> bytes_{};  // code point -> byte; the alphabet lies below U+0144
};

}  // namespace flywheel
