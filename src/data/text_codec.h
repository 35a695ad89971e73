// Text <-> the token rows a run trains and samples on: the run's tokenizer and, for a Hugging Face
// tokenizer, its chat format. Everything that turns text into training rows or prompts, or
// completions back into text (data sources, DPO rows, rollouts, rewards, evaluation), goes through
// one TextCodec, so a run never mixes two encodings.
//
//   data.tokenizer = byte   the byte tokenizer: BOS + prompt + completion + EOS, stop at EOS (toy shapes)
//                  = DIR    DIR/tokenizer.json (a Hugging Face model or tokenizer directory, or the file
//                           itself); prompts and completions are chat turns rendered with the model's chat
//                           format (data.chat_format: auto = from DIR/tokenizer_config.json's chat_template)
//                  = auto   (the default) model.from_hf's directory when it has a tokenizer.json, else byte
//                           (resolved when the shape is read: launch/ gives DataConfig a path or "byte")
//
// A prompt/completion pair is the conversation [user: prompt, assistant: completion], loss on the
// assistant turn; a generation prompt is [user: prompt] + the assistant header. Completions decode
// with special tokens skipped and, for Qwen3, the leading <think>...</think> block removed (transformers'
// Qwen3 usage splits the answer after </think> the same way), so a task's reward sees the answer text.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_format.h"
#include "data/chat_messages.h"
#include "data/data_source.h"
#include "data/tokenizer.h"

namespace flywheel {

class TextCodec {
 public:
  // The codec of config.tokenizer / chat_format / enable_thinking, loaded once per process and shared
  // (a real tokenizer.json takes a second to load). Throws InputError naming the file or key.
  static std::shared_ptr<const TextCodec> open(const DataConfig& config);

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ChatFormat* chat_format() const { return chat_.get(); }  // null for the byte tokenizer
  bool byte_level() const { return chat_ == nullptr; }

  // An SFT example: tokens and the loss mask (data/data_source.h).
  TokenizedSample encode_example(std::string_view prompt, std::string_view completion) const;
  // A chat conversation ending with an assistant turn, loss on every assistant turn (HF tokenizers only).
  TokenizedSample encode_conversation(std::span<const ChatMessage> messages) const;
  // `prompt` (ending with a user turn) answered by `reply`, loss on the reply only (a DPO side).
  TokenizedSample encode_reply(std::span<const ChatMessage> prompt, std::string_view reply) const;
  // What generation starts from: a task prompt (a user turn with a chat format), or a conversation
  // ending with a user turn (HF tokenizers only: the byte tokenizer has no turns; InputError).
  std::vector<int32_t> encode_prompt(std::string_view prompt) const;
  std::vector<int32_t> encode_chat_prompt(std::span<const ChatMessage> messages) const;
  // Where generation stops: EOS (byte), the chat format's end of turn and the tokenizer's EOS.
  std::vector<int32_t> stop_tokens() const;
  // A generated completion as the answer text a reward reads.
  std::string decode_completion(std::span<const int32_t> ids) const;
  // Throws InputError unless a model of vocab_size ids (model.vocab_size) embeds every token id.
  void check_model_vocabulary(int64_t vocab_size) const;
  // Fills batch positions that nothing reads (masked out of every loss).
  int32_t pad_id() const;
  // "byte tokenizer", "tokenizer DIR (151669 ids), chat format chatml (no thinking)".
  std::string describe() const { return description_; }

 private:
  TextCodec() = default;
  std::shared_ptr<const Tokenizer> tokenizer_;
  std::unique_ptr<ChatFormat> chat_;
  std::string description_;
};

}  // namespace flywheel
