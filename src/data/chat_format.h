// Chat formats: a conversation rendered as the model's chat template renders it, and encoded to token ids
// with a per-token loss mask. Two formats, each exactly what its shipped Jinja chat_template renders for
// system / user / assistant messages with string contents and no tools (tests/unit/test_chat_oracle.cpp
// compares both, text and ids, with @huggingface/jinja on the real templates):
//   "chatml"  Qwen3: <|im_start|>role\ncontent<|im_end|>\n; assistant turns after the last user query
//             carry a <think>...</think> block (empty when the content has none), earlier ones lose it;
//             enable_thinking = false puts an empty think block in the generation prompt.
//   "llama3"  Llama-3.1 / 3.2: <|begin_of_text|>, a system turn that always opens with "Cutting Knowledge
//             Date: December 2023\nToday Date: <date_string>\n\n", then
//             <|start_header_id|>role<|end_header_id|>\n\n trim(content)<|eot_id|> per message.
// data/chat_format_detect.h picks the format from a tokenizer_config.json or the tokenizer's tokens.
//
// The loss mask marks what the model writes: each assistant turn's text after its header, and the
// end-of-turn token (<|im_end|> / <|eot_id|>); never headers, system or user turns, or the "\n" after
// <|im_end|>. With enable_thinking = false the empty think block of the last assistant turn is outside the
// mask, because the generation prompt already holds it: the masked tokens are then exactly what the model
// generates after render(messages before it, add_generation_prompt = true).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/chat_messages.h"
#include "data/tokenizer.h"

namespace flywheel {

// One piece of a rendered conversation: a special token (by its content) or text, in the loss or not.
struct ChatPiece {
  std::string text;
  bool special = false;
  bool loss = false;
  bool operator==(const ChatPiece&) const = default;
};

struct ChatRendering {
  std::vector<ChatPiece> pieces;
  std::string text() const;  // what the Jinja template renders: the pieces concatenated
};

struct ChatTokens {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss;  // loss[i] == 1: ids[i] is an assistant token, a target of the loss
  int64_t loss_tokens() const;
};

struct ChatFormatOptions {
  // Qwen3's enable_thinking (the template's default: true): false ends the generation prompt with
  // "<think>\n\n</think>\n\n", the switch to answer without reasoning.
  bool enable_thinking = true;
  // Llama-3's date_string. The template takes strftime_now("%d %b %Y") (today) when the renderer defines
  // it, as transformers and @huggingface/jinja do, else "26 Jul 2024"; Flywheel defaults to the fixed
  // date so that a data set tokenizes the same on every day (see llama3_date_today for today's).
  std::string date_string = "26 Jul 2024";
};

class ChatFormat {
 public:
  virtual ~ChatFormat() = default;
  virtual std::string name() const = 0;
  // The special tokens the rendering uses, by content: the tokenizer must have each.
  virtual std::vector<std::string> special_tokens() const = 0;
  // The token that ends an assistant turn (<|im_end|>, <|eot_id|>): where generation stops.
  virtual std::string end_of_turn() const = 0;
  // The template's rendering of a non-empty conversation; add_generation_prompt appends the header of an
  // assistant turn (the prompt for generation).
  ChatRendering render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

 private:
  virtual void render_into(std::span<const ChatMessage> messages, bool add_generation_prompt,
                           std::vector<ChatPiece>& pieces) const = 0;
};

// "chatml" or "llama3"; any other name is an InputError listing those.
std::unique_ptr<ChatFormat> make_chat_format(std::string_view name, const ChatFormatOptions& options = {});
std::vector<std::string> chat_format_names();
// The two formats (chat_format_chatml.cpp, chat_format_llama3.cpp); make_chat_format picks one by name.
std::unique_ptr<ChatFormat> make_chatml_format(const ChatFormatOptions& options);
std::unique_ptr<ChatFormat> make_llama3_format(const ChatFormatOptions& options);

// Today's date as Llama-3's template writes it with strftime_now("%d %b %Y") ("05 Mar 2025"), local time.
std::string llama3_date_today();

// Throws InputError unless `tokenizer` has every special token of `format` (naming those it lacks).
void check_chat_tokenizer(const ChatFormat& format, const Tokenizer& tokenizer);

// Token ids of a rendering: special pieces by their ids, the text between two special pieces tokenized as
// one stretch (so the ids are those of tokenizing rendering.text() whole, as apply_chat_template does).
// Where a stretch holds both masked and unmasked text (a header and an assistant's content), a token that
// spans the boundary is in the loss.
ChatTokens encode_chat(const ChatRendering& rendering, const Tokenizer& tokenizer);

// SFT / DPO: the conversation with its loss mask (no generation prompt).
ChatTokens encode_conversation(const ChatFormat& format, const Tokenizer& tokenizer,
                               std::span<const ChatMessage> messages);
// RL / serving: the conversation followed by the generation prompt.
std::vector<int32_t> encode_generation_prompt(const ChatFormat& format, const Tokenizer& tokenizer,
                                              std::span<const ChatMessage> messages);

}  // namespace flywheel
