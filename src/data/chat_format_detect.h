// Which chat format (data/chat_format.h) a model uses, from its tokenizer_config.json chat_template or,
// for a tokenizer without one, from its special tokens.
//
// From the template (what each format renders exactly is the template of one model family, so a look-alike
// is refused rather than rendered differently):
//   chatml  contains "<|im_start|>" and "enable_thinking" (Qwen3's; Qwen2.5's ChatML lacks enable_thinking
//           and adds a default system prompt, so it is not this format)
//   llama3  contains "<|start_header_id|>" and "Cutting Knowledge Date" (Llama-3.1 / 3.2; Llama-3.0's has no
//           such system prelude)
// From the tokens (weaker: no tokenizer tells a template's details):
//   chatml  <|im_start|>, <|im_end|>, <think> and </think> (Qwen3's vocabulary)
//   llama3  <|begin_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|> and <|eom_id|> (3.1 on;
//           Llama-3.0 reserves id 128008 where 3.1 has <|eom_id|>)
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "data/tokenizer.h"

namespace flywheel {

std::optional<std::string> chat_format_from_template(std::string_view chat_template);
std::optional<std::string> chat_format_from_tokens(const Tokenizer& tokenizer);

// The format of the tokenizer in `tokenizer_dir`: from the chat_template of its tokenizer_config.json when
// that has one (a string, or the template named "default" of a list), else from `tokenizer`'s tokens.
// Throws InputError naming the file and what was looked for when neither says.
std::string detect_chat_format(const std::filesystem::path& tokenizer_dir, const Tokenizer& tokenizer);

}  // namespace flywheel
