// Preference JSONL reading: see preference_data.h.
#include "data/preference_data.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/chat_data.h"
#include "data/json_line.h"

namespace flywheel {
namespace {

bool is_blank(const std::string& line) {
  for (char c : line)
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string where(const std::string& path, int64_t line) {
  return detail::concat("preference file '", path, "' line ", line, ": ");
}

std::string string_field(const nlohmann::json& object, const char* key, const std::string& path, int64_t line) {
  const auto field = object.find(key);
  FW_INPUT_CHECK(field != object.end(), where(path, line), "missing field \"", key,
                 "\"; every line needs string fields \"prompt\", \"chosen\" and \"rejected\"");
  FW_INPUT_CHECK(field->is_string(), where(path, line), "field \"", key, "\" must be a string, got ",
                 field->type_name());
  return field->get<std::string>();
}

}  // namespace

std::vector<PreferencePair> read_preference_jsonl(const std::string& path, int64_t seq_len, bool byte_rows) {
  FW_CHECK(seq_len >= 1, "seq_len=", seq_len, " must be >= 1");
  std::error_code ignored;
  FW_INPUT_CHECK(!std::filesystem::is_directory(path, ignored), "preference file '", path,
                 "' is a directory; expected a file");
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in.is_open(), "cannot open preference file '", path, "': ", std::strerror(errno));
  std::vector<PreferencePair> pairs;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (is_blank(text)) continue;
    const nlohmann::json object = parse_object_line(
        text, where(path, line), "a JSON object with string fields \"prompt\", \"chosen\" and \"rejected\"");
    if (const auto prompt = object.find("prompt"); prompt != object.end() && prompt->is_array()) {
      ChatPreference chat = parse_chat_preference(text, where(path, line), line);
      PreferencePair pair{"", std::move(chat.chosen.content), std::move(chat.rejected.content), line};
      pair.prompt_messages = std::move(chat.prompt);
      pairs.push_back(std::move(pair));
      continue;
    }
    PreferencePair pair{string_field(object, "prompt", path, line), string_field(object, "chosen", path, line),
                        string_field(object, "rejected", path, line), line, {}};
    // BOS + prompt + first completion token must fit in seq_len + 1 tokens, or the row has no target.
    const auto prompt_tokens = static_cast<int64_t>(pair.prompt.size()) + 1;
    FW_INPUT_CHECK(!byte_rows || prompt_tokens + 1 <= seq_len + 1, where(path, line), "the prompt is ",
                   pair.prompt.size(), " bytes, so with BOS no completion token fits in train.seq_len = ", seq_len,
                   "; allowed: prompts of at most ", seq_len - 1, " bytes");
    pairs.push_back(std::move(pair));
  }
  FW_INPUT_CHECK(!in.bad(), "error reading preference file '", path, "' after line ", line);
  FW_INPUT_CHECK(!pairs.empty(), "preference file '", path, "' contains no pairs; expected one JSON object per line",
                 " with string fields \"prompt\", \"chosen\" and \"rejected\"");
  return pairs;
}

}  // namespace flywheel
