// A Hugging Face `tokenizer.json` (the format of the `tokenizers` library) with a byte-level BPE
// model: Qwen2 / Qwen3, Llama-3.x, and GPT-2-style files. docs/tokenizers.md lists the format facts,
// what is supported, and how the implementation is checked against transformers.js.
//
// encode(text) runs the HF pipeline:
//   1. ill-formed UTF-8 is repaired first (each maximal ill-formed subsequence -> U+FFFD, see
//      data/utf8.h): the HF library only ever sees valid strings;
//   2. added tokens with normalized == false are found in the raw text (data/added_tokens.h);
//   3. each stretch between them is normalized (data/hf_normalizer.h), searched for the added tokens
//      with normalized == true, then pre-tokenized (data/hf_pre_tokenizer.h) and merged by the BPE
//      model (data/bpe_model.h);
//   4. with add_special_tokens, the post_processor's template wraps the ids (data/hf_post_processor.h).
// decode(ids) maps ids to token strings (added tokens by content; unknown ids are skipped) and runs
// the decoder (data/hf_decoder.h).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "data/added_tokens.h"
#include "data/bpe_model.h"
#include "data/hf_decoder.h"
#include "data/hf_normalizer.h"
#include "data/hf_post_processor.h"
#include "data/hf_pre_tokenizer.h"
#include "data/tokenizer.h"

namespace flywheel {

class HfTokenizer final : public Tokenizer {
 public:
  // `path` is a tokenizer.json or a directory holding one. A tokenizer_config.json beside it, when
  // present, names the BOS / EOS / PAD tokens (bos_token, eos_token, pad_token); without it BOS is
  // the first token the post_processor puts before the text, and there is no EOS or PAD.
  static std::unique_ptr<HfTokenizer> load(const std::filesystem::path& path);
  // The same from the files' texts; `file` / `config_file` name them in errors, and an empty
  // `config_json` means there is no tokenizer_config.json.
  static std::unique_ptr<HfTokenizer> from_json(std::string_view tokenizer_json, const std::string& file,
                                                std::string_view config_json = {},
                                                const std::string& config_file = "tokenizer_config.json");

  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> token_id(std::string_view content) const override;
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> pad_id() const override { return pad_; }
  std::string name() const override { return name_; }

  // An added token's content, or the vocabulary's token (in the byte-level alphabet) of an id.
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  const std::vector<hf::AddedToken>& added_tokens() const { return added_; }
  const hf::BpeModel& model() const { return bpe_; }

 private:
  HfTokenizer(std::string name, hf::BpeModel bpe) : name_(std::move(name)), bpe_(std::move(bpe)) {}
  std::vector<int32_t> do_encode(std::string_view text, const EncodeOptions& options) const override;
  std::string do_decode(std::span<const int32_t> ids, const DecodeOptions& options) const override;

  void read_added_tokens(const hf::JsonCursor& list);
  void build_matchers();
  void read_config(const hf::JsonCursor& config);
  std::optional<int32_t> config_token(const hf::JsonCursor& config, std::string_view key) const;
  const hf::AddedToken* added_by_id(int32_t id) const;
  void encode_stretch(std::string_view stretch, std::vector<int32_t>& ids) const;

  std::string name_;
  hf::BpeModel bpe_;
  hf::Normalizer normalizer_;
  hf::PreTokenizer pre_tokenizer_;
  hf::PostProcessor post_processor_;
  hf::Decoder decoder_;
  std::vector<hf::AddedToken> added_;
  std::unordered_map<int32_t, size_t> added_index_by_id_;
  hf::TokenIds added_ids_by_content_;
  hf::AddedTokenMatcher raw_matcher_;         // normalized == false: found before normalization
  hf::AddedTokenMatcher normalized_matcher_;  // normalized == true: found in normalized stretches
  int64_t vocab_size_ = 0;
  std::optional<int32_t> bos_, eos_, pad_;
};

}  // namespace flywheel
