// Chat JSONL layouts (SFT, DPO, RL prompts): see chat_data.h.
#include "data/chat_data.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "data/json_line.h"

namespace flywheel {
namespace {

using nlohmann::json;

constexpr const char* kSftShape = "a JSON object {\"messages\": [...]} ending with an assistant message";
constexpr const char* kPreferenceShape =
    "a JSON object {\"prompt\": [...], \"chosen\": [{\"role\": \"assistant\", \"content\": \"...\"}], \"rejected\": "
    "[{\"role\": \"assistant\", \"content\": \"...\"}]}";
constexpr const char* kPromptShape = "a JSON object {\"messages\": [...], ...task fields} ending with a user message";

// Keys the real chat templates render and Flywheel does not.
void refuse_unsupported_keys(const json& object, const std::string& where) {
  for (const char* key : {"tools", "functions", "tool_choice", "documents"})
    FW_INPUT_CHECK(!object.contains(key), where, "key \"", key, "\" is not supported: Flywheel renders no tools",
                   " or documents, and the real template would render them");
}

const json& required(const json& object, const char* key, const std::string& where, const char* shape) {
  const auto found = object.find(key);
  FW_INPUT_CHECK(found != object.end(), where, "missing key \"", key, "\"; expected ", shape);
  return *found;
}

// "a user", "an assistant", "a system".
std::string with_article(ChatRole role) {
  std::string text = role == ChatRole::kAssistant ? "an " : "a ";
  text += role_name(role);
  return text;
}

void check_last_role(const Conversation& messages, ChatRole role, const char* key, const std::string& where,
                     const char* why) {
  const ChatMessage& last = messages.back();
  FW_INPUT_CHECK(last.role == role, where, "\"", key, "\" ends with ", with_article(last.role), " message (", key, "[",
                 messages.size() - 1, "]); it must end with ", with_article(role), " message: ", why);
}

// chosen / rejected: a list of exactly one assistant message.
ChatMessage parse_reply(const json& object, const char* key, const std::string& where) {
  const json& value = required(object, key, where, kPreferenceShape);
  FW_INPUT_CHECK(!value.is_string(), where, "\"", key, "\" is a string; in the conversational preference layout it",
                 " is a list with one assistant message: [{\"role\": \"assistant\", \"content\": \"...\"}]");
  const Conversation reply = parse_conversation(value, key, where);
  FW_INPUT_CHECK(reply.size() == 1, where, "\"", key, "\" has ", reply.size(),
                 " messages; it must be a list of exactly one assistant message");
  FW_INPUT_CHECK(reply[0].role == ChatRole::kAssistant, where, "\"", key, "\"[0] has role \"", role_name(reply[0].role),
                 "\"; it must be an assistant message");
  return reply[0];
}

bool is_blank(const std::string& line) {
  for (char c : line)
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

// Calls `read_line(text, where, line)` for each non-blank line of `path`.
void for_each_record(const std::string& path, const char* shape,
                     const std::function<void(const std::string&, const std::string&, int64_t)>& read_line) {
  std::error_code ignored;
  FW_INPUT_CHECK(!std::filesystem::is_directory(path, ignored), "chat file '", path,
                 "' is a directory; expected a file");
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in.is_open(), "cannot open chat file '", path, "': ", std::strerror(errno));
  std::string text;
  int64_t line = 0, records = 0;
  while (std::getline(in, text)) {
    ++line;
    if (is_blank(text)) continue;
    read_line(text, detail::concat("chat file '", path, "' line ", line, ": "), line);
    ++records;
  }
  FW_INPUT_CHECK(!in.bad(), "error reading chat file '", path, "' after line ", line);
  FW_INPUT_CHECK(records > 0, "chat file '", path, "' contains no records; expected one per line: ", shape);
}

}  // namespace

ChatExample parse_chat_example(const std::string& text, const std::string& where, int64_t line) {
  const json object = parse_object_line(text, where, kSftShape);
  refuse_unsupported_keys(object, where);
  ChatExample example{parse_conversation(required(object, "messages", where, kSftShape), "messages", where), line};
  check_last_role(example.messages, ChatRole::kAssistant, "messages", where,
                  "an SFT conversation trains on its assistant turns");
  return example;
}

ChatPreference parse_chat_preference(const std::string& text, const std::string& where, int64_t line) {
  const json object = parse_object_line(text, where, kPreferenceShape);
  refuse_unsupported_keys(object, where);
  ChatPreference pair;
  pair.prompt = parse_conversation(required(object, "prompt", where, kPreferenceShape), "prompt", where);
  check_last_role(pair.prompt, ChatRole::kUser, "prompt", where, "chosen and rejected answer it");
  pair.chosen = parse_reply(object, "chosen", where);
  pair.rejected = parse_reply(object, "rejected", where);
  pair.line = line;
  return pair;
}

ChatPrompt parse_chat_prompt(const std::string& text, const std::string& where, int64_t line) {
  json object = parse_object_line(text, where, kPromptShape);
  refuse_unsupported_keys(object, where);
  ChatPrompt prompt;
  prompt.messages = parse_conversation(required(object, "messages", where, kPromptShape), "messages", where);
  check_last_role(prompt.messages, ChatRole::kUser, "messages", where, "the policy answers it");
  object.erase("messages");
  prompt.fields = std::move(object);
  prompt.line = line;
  return prompt;
}

std::vector<ChatExample> read_chat_examples(const std::string& path) {
  std::vector<ChatExample> examples;
  for_each_record(path, kSftShape, [&](const std::string& text, const std::string& where, int64_t line) {
    examples.push_back(parse_chat_example(text, where, line));
  });
  return examples;
}

std::vector<ChatPreference> read_chat_preferences(const std::string& path) {
  std::vector<ChatPreference> pairs;
  for_each_record(path, kPreferenceShape, [&](const std::string& text, const std::string& where, int64_t line) {
    pairs.push_back(parse_chat_preference(text, where, line));
  });
  return pairs;
}

std::vector<ChatPrompt> read_chat_prompts(const std::string& path) {
  std::vector<ChatPrompt> prompts;
  for_each_record(path, kPromptShape, [&](const std::string& text, const std::string& where, int64_t line) {
    prompts.push_back(parse_chat_prompt(text, where, line));
  });
  return prompts;
}

}  // namespace flywheel
