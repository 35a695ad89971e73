// Chat formats by name, and a rendering's token ids and loss mask: see chat_format.h.
#include "data/chat_format.h"

#include <algorithm>
#include <ctime>

#include "core/error.h"

namespace flywheel {
namespace {

// Text pieces between two special pieces: tokenized as one string, as the tokenizer would see them.
struct Stretch {
  std::string text;
  std::vector<size_t> starts;  // where each piece begins in `text`
  std::vector<bool> loss;      // each piece's loss flag
};

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// The ids of a stretch and their flags. At a piece boundary where the flag changes, the tokens of the text
// before it (alone) that agree with the stretch's tokens keep the earlier flag; the rest take the later one,
// and a token spanning the boundary (a pre-token such as "\n\n" that crosses it) is in the loss.
void encode_stretch(const Stretch& stretch, const Tokenizer& tokenizer, ChatTokens& out) {
  const std::vector<int32_t> ids = tokenizer.encode(stretch.text);
  std::vector<uint8_t> flags(ids.size(), stretch.loss[0]);
  for (size_t j = 1; j < stretch.starts.size(); ++j) {
    if (stretch.loss[j] == stretch.loss[j - 1]) continue;
    const std::vector<int32_t> before = tokenizer.encode(std::string_view(stretch.text).substr(0, stretch.starts[j]));
    const size_t agree = common_prefix(before, ids);
    std::fill(flags.begin() + static_cast<std::ptrdiff_t>(agree), flags.end(), stretch.loss[j]);
    if (agree < before.size() && agree < ids.size()) flags[agree] = 1;  // spans the boundary
  }
  out.ids.insert(out.ids.end(), ids.begin(), ids.end());
  out.loss.insert(out.loss.end(), flags.begin(), flags.end());
}

int32_t special_id(const Tokenizer& tokenizer, const std::string& content) {
  const std::optional<int32_t> id = tokenizer.token_id(content);
  FW_INPUT_CHECK(id.has_value(), "tokenizer '", tokenizer.name(), "' has no token ", content,
                 ", which the chat format needs; choose the chat format of this tokenizer's model");
  return *id;
}

}  // namespace

std::string ChatRendering::text() const {
  std::string text;
  for (const ChatPiece& piece : pieces) text += piece.text;
  return text;
}

int64_t ChatTokens::loss_tokens() const { return std::count(loss.begin(), loss.end(), uint8_t{1}); }

ChatRendering ChatFormat::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  FW_CHECK(!messages.empty(), "chat format ", name(), ": a conversation to render has no messages");
  ChatRendering rendering;
  render_into(messages, add_generation_prompt, rendering.pieces);
  return rendering;
}

std::vector<std::string> chat_format_names() { return {"chatml", "llama3"}; }

std::unique_ptr<ChatFormat> make_chat_format(std::string_view name, const ChatFormatOptions& options) {
  if (name == "chatml") return make_chatml_format(options);
  if (name == "llama3") return make_llama3_format(options);
  FW_INPUT_THROW("chat format '", name, "' is not known; allowed: chatml (Qwen3), llama3 (Llama-3.1 / 3.2)");
}

std::string llama3_date_today() {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char text[32];
  const size_t length = std::strftime(text, sizeof text, "%d %b %Y", &local);
  FW_CHECK(length > 0, "strftime of today's date failed");
  return std::string(text, length);
}

void check_chat_tokenizer(const ChatFormat& format, const Tokenizer& tokenizer) {
  std::string missing;
  for (const std::string& token : format.special_tokens())
    if (!tokenizer.token_id(token)) {
      if (!missing.empty()) missing += ", ";
      missing += token;
    }
  FW_INPUT_CHECK(missing.empty(), "chat format ", format.name(), " needs the special tokens ", missing,
                 ", which tokenizer '", tokenizer.name(), "' lacks; choose the chat format of this tokenizer's model");
}

ChatTokens encode_chat(const ChatRendering& rendering, const Tokenizer& tokenizer) {
  ChatTokens out;
  Stretch stretch;
  const auto flush = [&] {
    if (!stretch.text.empty()) encode_stretch(stretch, tokenizer, out);
    stretch = Stretch{};
  };
  for (const ChatPiece& piece : rendering.pieces) {
    if (piece.special) {
      flush();
      out.ids.push_back(special_id(tokenizer, piece.text));
      out.loss.push_back(piece.loss);
    } else if (!piece.text.empty()) {
      stretch.starts.push_back(stretch.text.size());
      stretch.loss.push_back(piece.loss);
      stretch.text += piece.text;
    }
  }
  flush();
  return out;
}

ChatTokens encode_conversation(const ChatFormat& format, const Tokenizer& tokenizer,
                               std::span<const ChatMessage> messages) {
  return encode_chat(format.render(messages, false), tokenizer);
}

std::vector<int32_t> encode_generation_prompt(const ChatFormat& format, const Tokenizer& tokenizer,
                                              std::span<const ChatMessage> messages) {
  return encode_chat(format.render(messages, true), tokenizer).ids;
}

}  // namespace flywheel
