// Tokenizers: the Tokenizer interface, and the byte tokenizer.
//
// The byte tokenizer (every byte is its own token, plus three specials) keeps the vocabulary tiny
// (259) and makes every string encodable, which is what a from-scratch post-training system with
// synthetic tasks needs; there is nothing to train. Its static API (ByteTokenizer) is what the data
// sources, tasks and rollouts use today; ByteTokenizerAdapter puts it behind the interface beside
// the Hugging Face tokenizers of real open models (data/hf_tokenizer.h).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace flywheel {

struct EncodeOptions {
  // Wrap the text as the tokenizer's template says (Llama-3: BOS first; Qwen: nothing). Off by
  // default, so that encode(text) is exactly the text: what concatenating chat-template pieces needs.
  bool add_special_tokens = false;
};

struct DecodeOptions {
  bool skip_special_tokens = false;  // leave out the added tokens marked special
};

// Text <-> token ids. Implementations are immutable once built and safe to share across threads.
class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& options = {}) const {
    return do_encode(text, options);
  }
  std::string decode(std::span<const int32_t> ids, const DecodeOptions& options = {}) const {
    return do_decode(ids, options);
  }

  // Ids lie in [0, vocab_size()): what a model's embedding must cover at least.
  virtual int64_t vocab_size() const = 0;
  // The id of a token by its content: an added / special token ("<|im_end|>"), else a vocabulary entry.
  virtual std::optional<int32_t> token_id(std::string_view content) const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> pad_id() const = 0;
  virtual std::string name() const = 0;

 private:
  virtual std::vector<int32_t> do_encode(std::string_view text, const EncodeOptions& options) const = 0;
  virtual std::string do_decode(std::span<const int32_t> ids, const DecodeOptions& options) const = 0;
};

class ByteTokenizer {
 public:
  static constexpr int32_t kBos = 256;  // start of every sequence
  static constexpr int32_t kEos = 257;  // end of a completion; generation stops here
  static constexpr int32_t kPad = 258;  // fills batch positions past a sequence's end
  static constexpr int32_t kVocabSize = 259;

  // One token per byte (0..255), no specials added.
  static std::vector<int32_t> encode(std::string_view text);

  // Inverse of encode. BOS and PAD are skipped, decoding stops at the first EOS, and ids
  // outside [0, kVocabSize) are skipped rather than rejected: decode is applied to model
  // samples, and a sampler bug should show up as missing text, not abort a long run.
  static std::string decode(const std::vector<int32_t>& ids);

  // SFT sequence BOS + prompt + completion + EOS. *loss_start (if given) receives the index of
  // the first token whose prediction counts in the loss: 1 + prompt bytes, i.e. the first
  // completion byte (or EOS when the completion is empty).
  static std::vector<int32_t> encode_sft(std::string_view prompt, std::string_view completion,
                                         int64_t* loss_start);
};

// ByteTokenizer behind the Tokenizer interface: encode with add_special_tokens puts BOS first;
// decode is ByteTokenizer::decode (BOS and PAD skipped, stops at EOS) whatever the options; a
// one-byte content is that byte's id.
class ByteTokenizerAdapter final : public Tokenizer {
 public:
  int64_t vocab_size() const override { return ByteTokenizer::kVocabSize; }
  std::optional<int32_t> token_id(std::string_view content) const override;
  std::optional<int32_t> bos_id() const override { return ByteTokenizer::kBos; }
  std::optional<int32_t> eos_id() const override { return ByteTokenizer::kEos; }
  std::optional<int32_t> pad_id() const override { return ByteTokenizer::kPad; }
  std::string name() const override { return "bytes"; }

 private:
  std::vector<int32_t> do_encode(std::string_view text, const EncodeOptions& options) const override;
  std::string do_decode(std::span<const int32_t> ids, const DecodeOptions& options) const override;
};

}  // namespace flywheel
