// HfTokenizer: encoding and decoding (loading is in hf_tokenizer_load.cpp).
#include "data/hf_tokenizer.h"

#include "core/utf8.h"

namespace flywheel {

std::optional<int32_t> HfTokenizer::token_id(std::string_view content) const {
  if (const auto it = added_ids_by_content_.find(content); it != added_ids_by_content_.end()) return it->second;
  return bpe_.token_to_id(content);
}

const hf::AddedToken* HfTokenizer::added_by_id(int32_t id) const {
  const auto it = added_index_by_id_.find(id);
  return it == added_index_by_id_.end() ? nullptr : &added_[it->second];
}

std::optional<std::string> HfTokenizer::id_to_token(int32_t id) const {
  if (const hf::AddedToken* added = added_by_id(id)) return added->content;
  if (const std::string* token = bpe_.id_to_token(id)) return *token;
  return std::nullopt;
}

bool HfTokenizer::is_special(int32_t id) const {
  const hf::AddedToken* added = added_by_id(id);
  return added && added->special;
}

void HfTokenizer::encode_stretch(std::string_view stretch, std::vector<int32_t>& ids) const {
  const std::string normalized = normalizer_.is_identity() ? std::string() : normalizer_.apply(stretch);
  const std::string_view text = normalizer_.is_identity() ? stretch : std::string_view(normalized);
  const auto merge = [&](std::string_view piece) { bpe_.tokenize(piece, ids); };
  if (normalized_matcher_.empty()) return pre_tokenizer_.run(text, merge);
  std::vector<hf::TextSpan> spans;
  normalized_matcher_.split(text, spans);
  for (const hf::TextSpan& span : spans) {
    if (span.id >= 0) ids.push_back(span.id);
    else pre_tokenizer_.run(text.substr(span.begin, span.end - span.begin), merge);
  }
}

std::vector<int32_t> HfTokenizer::do_encode(std::string_view input, const EncodeOptions& options) const {
  std::string repaired;
  std::string_view text = input;
  if (!utf8::is_valid(input)) {
    repaired = utf8::repair(input);
    text = repaired;
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<hf::TextSpan> spans;
  raw_matcher_.split(text, spans);
  for (const hf::TextSpan& span : spans) {
    if (span.id >= 0) ids.push_back(span.id);
    else encode_stretch(text.substr(span.begin, span.end - span.begin), ids);
  }
  post_processor_.apply(ids, options.add_special_tokens);
  return ids;
}

std::string HfTokenizer::do_decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (const hf::AddedToken* added = added_by_id(id)) {
      if (!(options.skip_special_tokens && added->special)) tokens.push_back(added->content);
    } else if (const std::string* token = bpe_.id_to_token(id)) {
      tokens.push_back(*token);
    }  // an id the tokenizer does not have is skipped, as the HF library does
  }
  return decoder_.decode(std::move(tokens));
}

}  // namespace flywheel
