// Chat data in JSONL files, one record per line (blank lines skipped), in three layouts:
//   SFT        {"messages": [...]}: ends with an assistant message; the loss counts assistant turns.
//   DPO        {"prompt": [...], "chosen": [{"role": "assistant", "content": "..."}], "rejected": [...]}:
//              TRL's conversational preference layout with an explicit prompt. The prompt ends with a user
//              message; chosen and rejected are lists of exactly one assistant message each (a bare string
//              is refused, saying so: it would mix the text and the conversational layouts).
//   RL prompt  {"messages": [...], ...task fields}: ends with a user message, which the policy answers;
//              every other top-level key is kept as JSON (`fields`) for the reward.
// Messages are read by data/chat_messages.h (roles, string contents, no other keys). At the top level,
// "tools", "functions", "tool_choice" and "documents" are refused: the real templates render them and
// Flywheel does not. Other top-level keys of SFT and DPO lines are metadata ("id", "source") and ignored,
// as the prompt/completion and preference readers ignore theirs.
// Every error is an InputError naming the file, the line, the key and message index, and what is allowed.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/chat_messages.h"

namespace flywheel {

struct ChatExample {
  Conversation messages;
  int64_t line = 0;  // 1-based line in the file, for messages
};

struct ChatPreference {
  Conversation prompt;
  ChatMessage chosen, rejected;  // assistant messages
  int64_t line = 0;
};

struct ChatPrompt {
  Conversation messages;
  nlohmann::json fields = nlohmann::json::object();  // the line's other top-level keys
  int64_t line = 0;
};

// One line of each layout; `where` prefixes errors ("chat file 'a.jsonl' line 3: "), `line` is stored.
ChatExample parse_chat_example(const std::string& text, const std::string& where, int64_t line = 0);
ChatPreference parse_chat_preference(const std::string& text, const std::string& where, int64_t line = 0);
ChatPrompt parse_chat_prompt(const std::string& text, const std::string& where, int64_t line = 0);

// A whole file of one layout; also refused: a directory, an unreadable file, a file with no records.
std::vector<ChatExample> read_chat_examples(const std::string& path);
std::vector<ChatPreference> read_chat_preferences(const std::string& path);
std::vector<ChatPrompt> read_chat_prompts(const std::string& path);

}  // namespace flywheel
