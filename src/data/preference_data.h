// Preference pairs for DPO: a JSONL file of {"prompt": "...", "chosen": "...", "rejected": "..."}
// (one object per line; other fields ignored; blank lines skipped). train/preference_rows.h turns
// pairs into training rows.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace flywheel {

struct PreferencePair {
  std::string prompt, chosen, rejected;
  int64_t line = 0;  // 1-based line in the file, for messages
};

// Reads and validates the whole file. Errors name the file and line: unreadable file, invalid
// JSON, not an object, a missing or non-string field, a prompt so long that no completion token
// fits in seq_len (BOS + prompt + 1 token must fit in seq_len + 1 tokens), or no pairs at all.
std::vector<PreferencePair> read_preference_jsonl(const std::string& path, int64_t seq_len);

}  // namespace flywheel
