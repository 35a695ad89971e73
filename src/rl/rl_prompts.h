// The prompts of RL steps (rl.prompts). Prompt i < P = rl.prompts_per_step of RL step s is
//   task       example (train.seed + 1, s * P + i) of rl.task (a stream keyed apart from the SFT
//              warm-up's, which uses the seed itself); its reference answer is what the task reward
//              compares the completion with.
//   chat:FILE  record (s * P + i) mod N of the file's N records, in file order (shuffle the file to
//              shuffle the prompts): data/chat_data.h's RL layout, {"messages": [..., user turn],
//              ...fields}, rendered as a generation prompt with the run's chat format. With
//              rl.reward = task every record needs a string "answer", which the completion must equal
//              exactly (the built-in tasks' rule); with rl.reward = file the scorer finds the record's
//              messages and other fields in the rollout file (rl/rollout_file.h).
// A chat prompt file is read, and every record rendered and checked, when the run starts.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_data.h"
#include "data/tasks.h"
#include "data/text_codec.h"
#include "rl/flywheel_spec.h"

namespace flywheel {

struct RlPrompt {
  // prompt: the prompt's text (a chat prompt's last user turn); completion: the answer the task reward
  // compares with (a chat record's "answer"; empty when an external scorer scores).
  TaskExample example;
  std::vector<int32_t> tokens;     // what generation starts from (BOS or the chat template included)
  std::optional<ChatPrompt> chat;  // the file's record, for chat prompts
};

class RlPrompts {
 public:
  // Throws InputError naming the file, the line and what is wrong (unreadable, not the RL layout,
  // a byte tokenizer, no "answer" with rl.reward = task).
  RlPrompts(const FlywheelSpec& spec, std::shared_ptr<const TextCodec> codec);

  RlPrompt prompt(int64_t step, int64_t index) const;
  // The longest prompt the stream can draw, in tokens (for a task: a bound, its longest prompt's
  // bytes plus the chat template's tokens), and where it comes from, for messages.
  int64_t max_prompt_tokens() const { return max_tokens_; }
  const std::string& longest_source() const { return longest_; }
  // "task addition" or "chat:FILE (N prompts)".
  std::string describe() const;

 private:
  const FlywheelSpec& spec_;
  std::shared_ptr<const TextCodec> codec_;
  std::unique_ptr<Task> task_;
  std::vector<ChatPrompt> records_;           // chat prompts
  std::vector<std::vector<int32_t>> tokens_;  // records_' rendered prompts
  int64_t max_tokens_ = 0;
  std::string longest_;
};

}  // namespace flywheel
