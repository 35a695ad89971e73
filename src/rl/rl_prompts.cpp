#include "rl/rl_prompts.h"

#include <utility>

#include "core/error.h"

namespace flywheel {
namespace {

std::string last_user_turn(const Conversation& messages) {
  for (auto it = messages.rbegin(); it != messages.rend(); ++it)
    if (it->role == ChatRole::kUser) return it->content;
  return {};
}

}  // namespace

RlPrompts::RlPrompts(const FlywheelSpec& spec, std::shared_ptr<const TextCodec> codec)
    : spec_(spec), codec_(std::move(codec)) {
  const RlConfig& rl = spec.rl;
  if (!rl.chat_prompts()) {
    task_ = make_task(rl.task, spec.data.task_max_digits);
    // Byte tokenizer: BOS + one token a byte. A chat format adds its template around the text, whose
    // tokens are at most its bytes (every byte-level BPE token holds at least one byte).
    max_tokens_ = static_cast<int64_t>(codec_->encode_prompt("").size()) + task_->max_prompt_bytes();
    longest_ = detail::concat("task ", rl.task, " with data.task_max_digits = ", spec.data.task_max_digits);
    return;
  }
  const std::string file = rl.chat_prompt_file();
  FW_INPUT_CHECK(!codec_->byte_level(), "rl.prompts = chat:", file,
                 " needs a Hugging Face tokenizer (data.tokenizer = DIR or model.from_hf): the byte tokenizer ",
                 "has no chat turns; with it, RL prompts come from rl.task (rl.prompts = task)");
  records_ = read_chat_prompts(file);
  for (const ChatPrompt& record : records_) {
    const std::string where = detail::concat("chat prompt file '", file, "' line ", record.line, ": ");
    if (rl.reward == "task") {
      const auto answer = record.fields.find("answer");
      FW_INPUT_CHECK(answer != record.fields.end() && answer->is_string(), where,
                     "no string \"answer\": rl.reward = task scores a completion by exact match with the ",
                     "record's \"answer\" (an external scorer, rl.reward = file, needs none)");
    }
    tokens_.push_back(codec_->encode_chat_prompt(record.messages));
    const int64_t n = static_cast<int64_t>(tokens_.back().size());
    if (n > max_tokens_) max_tokens_ = n, longest_ = detail::concat("chat prompt file '", file, "' line ", record.line);
  }
}

RlPrompt RlPrompts::prompt(int64_t step, int64_t index) const {
  const int64_t stream = step * spec_.rl.prompts_per_step + index;
  RlPrompt p;
  if (task_) {
    p.example = task_->generate(spec_.train.seed + 1, stream);
    p.tokens = codec_->encode_prompt(p.example.prompt);
    return p;
  }
  const size_t record = static_cast<size_t>(stream % static_cast<int64_t>(records_.size()));
  p.chat = records_[record];
  p.example.prompt = last_user_turn(p.chat->messages);
  const auto answer = p.chat->fields.find("answer");
  if (answer != p.chat->fields.end() && answer->is_string()) p.example.completion = answer->get<std::string>();
  p.tokens = tokens_[record];
  return p;
}

std::string RlPrompts::describe() const {
  if (task_) return "task " + spec_.rl.task;
  return detail::concat("chat:", spec_.rl.chat_prompt_file(), " (", records_.size(), " prompts)");
}

}  // namespace flywheel
