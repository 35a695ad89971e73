#include "data/tokenizer.h"

#include "core/error.h"

namespace flywheel {

std::vector<int32_t> ByteTokenizer::encode(std::string_view text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (char c : text) ids.push_back(static_cast<int32_t>(static_cast<unsigned char>(c)));
  return ids;
}

std::string ByteTokenizer::decode(const std::vector<int32_t>& ids) {
  std::string text;
  text.reserve(ids.size());
  for (int32_t id : ids) {
    if (id == kEos) break;
    if (id < 0 || id > 255) continue;  // BOS, PAD and out-of-range ids render as nothing
    text.push_back(static_cast<char>(static_cast<unsigned char>(id)));
  }
  return text;
}

std::vector<int32_t> ByteTokenizer::encode_sft(std::string_view prompt, std::string_view completion,
                                               int64_t* loss_start) {
  std::vector<int32_t> ids;
  ids.reserve(prompt.size() + completion.size() + 2);
  ids.push_back(kBos);
  for (char c : prompt) ids.push_back(static_cast<unsigned char>(c));
  for (char c : completion) ids.push_back(static_cast<unsigned char>(c));
  ids.push_back(kEos);
  if (loss_start) *loss_start = 1 + static_cast<int64_t>(prompt.size());
  return ids;
}

std::optional<int32_t> ByteTokenizerAdapter::token_id(std::string_view content) const {
  if (content.size() != 1) return std::nullopt;
  return static_cast<int32_t>(static_cast<unsigned char>(content[0]));
}

std::vector<int32_t> ByteTokenizerAdapter::do_encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> ids;
  if (options.add_special_tokens) ids.push_back(ByteTokenizer::kBos);
  const std::vector<int32_t> bytes = ByteTokenizer::encode(text);
  ids.insert(ids.end(), bytes.begin(), bytes.end());
  return ids;
}

std::string ByteTokenizerAdapter::do_decode(std::span<const int32_t> ids, const DecodeOptions&) const {
  return ByteTokenizer::decode(std::vector<int32_t>(ids.begin(), ids.end()));
}

}  // namespace flywheel
