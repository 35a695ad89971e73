#include "data/hf_decoder.h"

#include "data/byte_level.h"
#include "core/utf8.h"

namespace flywheel::hf {
namespace {

// Appends the bytes a token's characters stand for; false (and nothing appended) when one of them
// is not in the byte-level alphabet.
bool append_token_bytes(const std::string& token, std::string& bytes) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  const size_t mark = bytes.size();
  for (size_t at = 0; at < token.size();) {
    size_t length = 0;
    const int byte = alphabet.byte_of(utf8::decode_at(token, at, &length));
    if (byte < 0) {
      bytes.resize(mark);
      return false;
    }
    bytes.push_back(static_cast<char>(byte));
    at += length;
  }
  return true;
}

}  // namespace

std::string byte_level_decode(const std::vector<std::string>& tokens) {
  std::string bytes;
  for (const std::string& token : tokens)
    if (!append_token_bytes(token, bytes)) bytes += token;
  return utf8::is_valid(bytes) ? bytes : utf8::repair(bytes);
}

void Decoder::append_kinds(const JsonCursor& spec, std::vector<Kind>& kinds) {
  const std::string type = spec.type();
  if (type == "ByteLevel") {
    kinds.push_back(Kind::kByteLevel);
  } else if (type == "Sequence") {
    const JsonCursor members = spec.at("decoders");
    members.expect_array();
    for (size_t i = 0; i < members.size(); ++i) append_kinds(members[i], kinds);
  } else {
    spec.at("type").fail("unsupported decoder type \"" + type +
                         "\"; supported: ByteLevel, Sequence (of these), or null");
  }
}

Decoder Decoder::from_json(const std::optional<JsonCursor>& spec) {
  Decoder decoder;
  if (spec) append_kinds(*spec, decoder.chain_);
  return decoder;
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  if (chain_.empty()) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) joined += ' ';
      joined += tokens[i];
    }
    return joined;
  }
  // Each decoder of the chain maps a list of strings to a list (ByteLevel to a list of one).
  for (Kind kind : chain_) {
    if (kind == Kind::kByteLevel) tokens = {byte_level_decode(tokens)};
  }
  std::string text;
  for (const std::string& t : tokens) text += t;
  return text;
}

}  // namespace flywheel::hf
