// Chat messages in the OpenAI messages format, {"role": "system" | "user" | "assistant", "content": "..."},
// read strictly from JSON. What is accepted, and why the rest is refused:
//   - role: exactly "system", "user" or "assistant". "tool", "function", "ipython" and "developer" are
//     refused: Flywheel renders no tool calls, and the Qwen3 / Llama-3.2 templates render "developer" as
//     neither a system nor a user turn.
//   - content: a string (it may be empty). null (a tool-call message) and a list of content parts
//     ([{"type": "text", ...}]) are refused by name: content parts are not supported.
//   - no other key. OpenAI also defines "name", "tool_calls", "tool_call_id", "function_call", "refusal" and
//     "audio", and Qwen3's template reads "reasoning_content"; neither chat format here renders "name", so
//     accepting it would drop it silently, and the others change what the real template renders. Each is
//     refused naming the key (reasoning goes inside content as <think>...</think>, which Qwen3's
//     template parses).
// A conversation is a non-empty list of such messages. Which role it must end with depends on its use
// (SFT, DPO, RL prompt: data/chat_data.h).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace flywheel {

enum class ChatRole { kSystem, kUser, kAssistant };

// "system", "user", "assistant": the role as the templates write it.
std::string_view role_name(ChatRole role);

struct ChatMessage {
  ChatRole role = ChatRole::kUser;
  std::string content;
  bool operator==(const ChatMessage&) const = default;
};

using Conversation = std::vector<ChatMessage>;

// Reads `value`, the list at key `key` ("messages", "prompt", "chosen", ...), as a conversation, or throws
// InputError "<where>..." naming the key, the message index (messages[2]) and what is allowed.
// `where` is the prefix of every message: "chat file 'a.jsonl' line 3: ".
Conversation parse_conversation(const nlohmann::json& value, std::string_view key, const std::string& where);

}  // namespace flywheel
