// Strict reading of OpenAI-format chat messages: see chat_messages.h.
#include "data/chat_messages.h"

#include "core/error.h"

namespace flywheel {
namespace {

using nlohmann::json;

constexpr const char* kAllowedRoles = "allowed roles: \"system\", \"user\", \"assistant\"";
constexpr const char* kMessageShape = "{\"role\": \"system\" | \"user\" | \"assistant\", \"content\": \"...\"}";

// Why a role outside the three is refused, beyond "not allowed".
std::string role_hint(const std::string& role) {
  if (role == "tool" || role == "function" || role == "ipython")
    return " (tool and function messages are not supported: Flywheel renders no tool calls)";
  if (role == "developer") return " (give developer instructions as a \"system\" message)";
  return "";
}

// Why a key beyond "role" and "content" is refused.
std::string key_hint(const std::string& key) {
  if (key == "name") return "; neither chat format renders \"name\", so it would be dropped silently";
  if (key == "tool_calls" || key == "tool_call_id" || key == "function_call") return "; tool calls are not supported";
  if (key == "reasoning_content")
    return "; put the reasoning inside \"content\" as <think>...</think>, which Qwen3's template parses";
  return "";
}

ChatRole parse_role(const json& message, const std::string& at) {
  const auto role = message.find("role");
  FW_INPUT_CHECK(role != message.end(), at, " has no \"role\"; ", kAllowedRoles);
  FW_INPUT_CHECK(role->is_string(), at, " \"role\" must be a string, got ", role->type_name(), "; ", kAllowedRoles);
  const std::string& name = role->get_ref<const std::string&>();
  if (name == "system") return ChatRole::kSystem;
  if (name == "user") return ChatRole::kUser;
  if (name == "assistant") return ChatRole::kAssistant;
  FW_INPUT_THROW(at, " has role \"", name, "\"; ", kAllowedRoles, role_hint(name));
}

std::string parse_content(const json& message, const std::string& at) {
  const auto content = message.find("content");
  FW_INPUT_CHECK(content != message.end(), at, " has no \"content\"; every message needs a string \"content\"");
  FW_INPUT_CHECK(!content->is_null(), at, " \"content\" is null; it must be a string (messages without content,",
                 " as in tool calls, are not supported)");
  FW_INPUT_CHECK(!content->is_array(), at, " \"content\" is a list of content parts; content parts are not",
                 " supported: give the text as one string");
  FW_INPUT_CHECK(content->is_string(), at, " \"content\" must be a string, got ", content->type_name());
  return content->get<std::string>();
}

ChatMessage parse_message(const json& message, const std::string& at) {
  FW_INPUT_CHECK(message.is_object(), at, " must be an object ", kMessageShape, ", got ", message.type_name());
  for (const auto& [key, unused] : message.items())
    FW_INPUT_CHECK(key == "role" || key == "content", at, " has key \"", key,
                   "\", which is not supported: a message has exactly the keys \"role\" and \"content\"",
                   key_hint(key));
  ChatMessage parsed;
  parsed.role = parse_role(message, at);
  parsed.content = parse_content(message, at);
  return parsed;
}

}  // namespace

std::string_view role_name(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "system";
    case ChatRole::kUser:
      return "user";
    case ChatRole::kAssistant:
      return "assistant";
  }
  FW_THROW("unknown ChatRole ", static_cast<int>(role));
}

Conversation parse_conversation(const json& value, std::string_view key, const std::string& where) {
  FW_INPUT_CHECK(value.is_array(), where, "\"", key, "\" must be a list of messages ", kMessageShape, ", got ",
                 value.type_name());
  FW_INPUT_CHECK(!value.empty(), where, "\"", key, "\" is an empty list; a conversation needs at least one message");
  Conversation conversation;
  conversation.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    std::string at = where;
    at += key;
    at += "[" + std::to_string(i) + "]";
    conversation.push_back(parse_message(value[i], at));
  }
  return conversation;
}

}  // namespace flywheel
