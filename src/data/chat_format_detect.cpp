// Chat format detection: see chat_format_detect.h.
#include "data/chat_format_detect.h"

#include <fstream>
#include <initializer_list>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace flywheel {
namespace {

bool contains_all(std::string_view text, std::initializer_list<std::string_view> markers) {
  for (std::string_view marker : markers)
    if (text.find(marker) == std::string_view::npos) return false;
  return true;
}

bool has_tokens(const Tokenizer& tokenizer, std::initializer_list<std::string_view> tokens) {
  for (std::string_view token : tokens)
    if (!tokenizer.token_id(token)) return false;
  return true;
}

// The chat_template of a tokenizer_config.json: a string, or [{"name": ..., "template": ...}] whose
// "default" entry counts; nullopt without one.
std::optional<std::string> read_template(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  FW_INPUT_CHECK(in.is_open(), "cannot open '", file.string(), "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const nlohmann::json config = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  FW_INPUT_CHECK(config.is_object(), "'", file.string(), "' is not a JSON object");
  const auto found = config.find("chat_template");
  if (found == config.end() || found->is_null()) return std::nullopt;
  if (found->is_string()) return found->get<std::string>();
  FW_INPUT_CHECK(found->is_array(), "'", file.string(), "': chat_template must be a string or a list of",
                 " {\"name\", \"template\"}, got ", found->type_name());
  for (const nlohmann::json& entry : *found)
    if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
        entry["template"].is_string())
      return entry["template"].get<std::string>();
  FW_INPUT_THROW("'", file.string(), "': chat_template is a list without a string template named \"default\"");
}

}  // namespace

std::optional<std::string> chat_format_from_template(std::string_view chat_template) {
  if (contains_all(chat_template, {"<|im_start|>", "enable_thinking"})) return "chatml";
  if (contains_all(chat_template, {"<|start_header_id|>", "Cutting Knowledge Date"})) return "llama3";
  return std::nullopt;
}

std::optional<std::string> chat_format_from_tokens(const Tokenizer& tokenizer) {
  if (has_tokens(tokenizer, {"<|im_start|>", "<|im_end|>", "<think>", "</think>"})) return "chatml";
  if (has_tokens(tokenizer,
                 {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>"}))
    return "llama3";
  return std::nullopt;
}

std::string detect_chat_format(const std::filesystem::path& tokenizer_dir, const Tokenizer& tokenizer) {
  const std::filesystem::path config = tokenizer_dir / "tokenizer_config.json";
  if (std::filesystem::exists(config)) {
    if (const std::optional<std::string> chat_template = read_template(config)) {
      const std::optional<std::string> format = chat_format_from_template(*chat_template);
      FW_INPUT_CHECK(format.has_value(), "the chat_template of '", config.string(), "' is neither Qwen3's ChatML",
                     " (<|im_start|> with enable_thinking) nor Llama-3.1/3.2's (<|start_header_id|> with",
                     " \"Cutting Knowledge Date\"); Flywheel renders only those (chat formats chatml, llama3)");
      return *format;
    }
  }
  const std::optional<std::string> format = chat_format_from_tokens(tokenizer);
  FW_INPUT_CHECK(format.has_value(), "tokenizer '", tokenizer.name(), "' in '", tokenizer_dir.string(),
                 "' has no chat_template and neither Qwen3's chat tokens (<|im_start|>, <|im_end|>, <think>,",
                 " </think>) nor Llama-3.1's (<|begin_of_text|>, <|start_header_id|>, <|end_header_id|>,",
                 " <|eot_id|>, <|eom_id|>); name the chat format (chatml or llama3)");
  return *format;
}

}  // namespace flywheel
