// Preference pairs for DPO: a JSONL file of {"prompt": "...", "chosen": "...", "rejected": "..."}
// (one object per line; other fields ignored; blank lines skipped), or, per line, TRL's conversational
// layout (data/chat_data.h): {"prompt": [messages ending with a user turn], "chosen": [one assistant
// message], "rejected": [one assistant message]}. train/preference_rows.h turns pairs into rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/chat_messages.h"

namespace flywheel {

struct PreferencePair {
  std::string prompt, chosen, rejected;  // chosen / rejected: the replies' text in either layout
  int64_t line = 0;                      // 1-based line in the file, for messages
  Conversation prompt_messages;          // the conversational layout's prompt (then `prompt` is empty)
};

// Reads and validates the whole file. Errors name the file and line: unreadable file, invalid
// JSON, not an object, a missing or non-string field, a prompt so long that no completion token
// fits in seq_len (BOS + prompt + 1 token must fit in seq_len + 1 tokens), or no pairs at all; in the
// conversational layout, whatever data/chat_data.h refuses (the lengths are then the tokenizer's:
// train/preference_rows.h checks them).
// byte_rows = false (a Hugging Face tokenizer): no byte bound, the rows' token lengths are checked later.
std::vector<PreferencePair> read_preference_jsonl(const std::string& path, int64_t seq_len, bool byte_rows = true);

}  // namespace flywheel
