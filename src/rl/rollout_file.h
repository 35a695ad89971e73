// External rewards: "a rollout file in, scored file back" (docs/objectives.md, "Rollout files").
//
// The trainer writes one JSON object per line for each sampled completion:
//   {"id": "s12-g3-k1", "step": 12, "group": 3, "prompt": "rev:abc=", "completion": "cba",
//    "prompt_tokens": [256, 114, ...], "completion_tokens": [99, 98, 97, 257], "logprobs": [-0.1, ...]}
// (group: the prompt's index within the step; the G samples of a prompt share it; logprobs: the
// sampler's logprob of each completion token). An external scorer writes back the same lines, in
// any order, each with a finite number "reward" added; other added fields are ignored.
// The token arrays are authoritative: "prompt"/"completion" are their text for the scorer, with
// bytes that are not valid UTF-8 replaced by U+FFFD. A rollout of a chat prompt (rl.prompts = chat:FILE)
// also carries the record's conversation and its other top-level keys:
//   "messages": [{"role": "user", "content": "9+8="}], "fields": {"answer": "17", "id": "q12"}
// ("prompt" is then the last user turn). Reading a file back ignores both.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/chat_messages.h"

namespace flywheel {

struct Rollout {
  std::string id;  // unique within the file
  int64_t step = 0;
  int64_t group = 0;
  std::string prompt, completion;
  std::vector<int32_t> prompt_tokens, completion_tokens;
  std::vector<float> logprobs;  // one per completion token
  double reward = 0;            // only meaningful after read_scored_rollouts
  Conversation messages;        // a chat prompt's conversation (written when not empty)
  nlohmann::json fields = nlohmann::json::object();  // the chat prompt record's other keys
};

// Writes `rollouts` to `path` (replacing it; written to path.tmp and renamed, so a scorer never
// sees half a file). Throws for duplicate or empty ids, logprobs not one per completion token or
// not finite, or an I/O error.
void write_rollouts(const std::string& path, const std::vector<Rollout>& rollouts);

// Parses every line of a rollout file (reward, when present, must be a finite number).
// Errors name file:line and the missing or mistyped field.
std::vector<Rollout> read_rollouts(const std::string& path, bool require_reward);

// Reads the scorer's file and returns the rewards in the order of `written`. Every line must carry
// a finite reward and the id of a written rollout with the same step, group and token arrays; every
// written id must appear exactly once. Errors name file:line (or the missing id).
std::vector<double> read_scored_rollouts(const std::string& path, const std::vector<Rollout>& written);

}  // namespace flywheel
