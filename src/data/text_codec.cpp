#include "data/text_codec.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/error.h"
#include "data/chat_format_detect.h"
#include "data/data_source.h"
#include "data/hf_tokenizer.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

// The directory a tokenizer path names: itself, or a tokenizer.json's folder.
fs::path tokenizer_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
}

// Qwen3's reasoning block: an answer is what follows "</think>" (with the blank lines after it).
std::string without_think_block(std::string text) {
  constexpr std::string_view kOpen = "<think>", kClose = "</think>";
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || text.compare(first, kOpen.size(), kOpen) != 0) return text;
  const size_t close = text.find(kClose, first);
  if (close == std::string::npos) return "";  // still thinking when the budget ran out: no answer
  const size_t answer = text.find_first_not_of(" \t\r\n", close + kClose.size());
  return answer == std::string::npos ? "" : text.substr(answer);
}

}  // namespace

std::shared_ptr<const TextCodec> TextCodec::open(const DataConfig& config) {
  FW_INPUT_CHECK(config.tokenizer != "auto", "data.tokenizer = auto was not resolved (a bug: launch/ resolves it)");
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const TextCodec>> opened;
  const std::string key = config.tokenizer + '\n' + config.chat_format + '\n' + (config.enable_thinking ? "1" : "0");
  std::lock_guard<std::mutex> lock(mutex);
  if (const auto it = opened.find(key); it != opened.end()) return it->second;
  std::shared_ptr<TextCodec> codec(new TextCodec());
  if (config.tokenizer == "byte") {
    FW_INPUT_CHECK(config.chat_format == "auto", "data.chat_format = ", config.chat_format,
                   ": the byte tokenizer has no chat format (set data.tokenizer to a Hugging Face tokenizer)");
    codec->tokenizer_ = std::make_shared<ByteTokenizerAdapter>();
    codec->description_ = "byte tokenizer";
  } else {
    std::error_code ec;
    FW_INPUT_CHECK(fs::exists(config.tokenizer, ec), "data.tokenizer = '", config.tokenizer,
                   "': no such file or directory (allowed: byte, auto, a tokenizer.json or a directory holding one)");
    std::shared_ptr<const Tokenizer> tokenizer = HfTokenizer::load(config.tokenizer);
    const std::string format = config.chat_format == "auto"
                                   ? detect_chat_format(tokenizer_dir(config.tokenizer), *tokenizer)
                                   : config.chat_format;
    ChatFormatOptions options;
    options.enable_thinking = config.enable_thinking;
    codec->chat_ = make_chat_format(format, options);
    check_chat_tokenizer(*codec->chat_, *tokenizer);
    codec->description_ =
        detail::concat("tokenizer ", config.tokenizer, " (", tokenizer->vocab_size(), " ids), chat format ", format,
                       format == "chatml" ? (config.enable_thinking ? " (thinking)" : " (no thinking)") : "");
    codec->tokenizer_ = std::move(tokenizer);
  }
  opened[key] = codec;
  return codec;
}

TokenizedSample TextCodec::encode_example(std::string_view prompt, std::string_view completion) const {
  TokenizedSample sample;
  if (byte_level()) {
    sample.tokens = ByteTokenizer::encode_sft(prompt, completion, &sample.loss_start);
    return sample;
  }
  const ChatMessage turns[] = {{ChatRole::kUser, std::string(prompt)}, {ChatRole::kAssistant, std::string(completion)}};
  return encode_conversation(turns);
}

TokenizedSample TextCodec::encode_conversation(std::span<const ChatMessage> messages) const {
  FW_CHECK(!byte_level(), "chat conversations need a Hugging Face tokenizer (data.tokenizer)");
  ChatTokens chat = flywheel::encode_conversation(*chat_, *tokenizer_, messages);
  TokenizedSample sample;
  sample.tokens = std::move(chat.ids);
  sample.loss = std::move(chat.loss);
  const auto first = std::find(sample.loss.begin(), sample.loss.end(), 1);
  sample.loss_start = first - sample.loss.begin();
  return sample;
}

TokenizedSample TextCodec::encode_reply(std::span<const ChatMessage> prompt, std::string_view reply) const {
  std::vector<ChatMessage> messages(prompt.begin(), prompt.end());
  messages.push_back({ChatRole::kAssistant, std::string(reply)});
  TokenizedSample sample = encode_conversation(messages);
  // The reply's tokens are the last run of loss tokens (headers separate the turns' runs).
  size_t run = sample.loss.size();
  while (run > 0 && sample.loss[run - 1] == 0) --run;
  while (run > 0 && sample.loss[run - 1] != 0) --run;
  std::fill(sample.loss.begin(), sample.loss.begin() + static_cast<std::ptrdiff_t>(run), 0);
  sample.loss_start = static_cast<int64_t>(run);
  return sample;
}

std::vector<int32_t> TextCodec::encode_prompt(std::string_view prompt) const {
  if (byte_level()) {
    std::vector<int32_t> ids{ByteTokenizer::kBos};
    for (int32_t id : ByteTokenizer::encode(prompt)) ids.push_back(id);
    return ids;
  }
  const ChatMessage turn[] = {{ChatRole::kUser, std::string(prompt)}};
  return encode_chat_prompt(turn);
}

std::vector<int32_t> TextCodec::encode_chat_prompt(std::span<const ChatMessage> messages) const {
  FW_INPUT_CHECK(!byte_level(), "chat prompts need a Hugging Face tokenizer (data.tokenizer = DIR or model.from_hf): ",
                 "the byte tokenizer has no chat turns");
  return encode_generation_prompt(*chat_, *tokenizer_, messages);
}

std::vector<int32_t> TextCodec::stop_tokens() const {
  if (byte_level()) return {ByteTokenizer::kEos};
  std::vector<int32_t> stops{*tokenizer_->token_id(chat_->end_of_turn())};  // check_chat_tokenizer: present
  if (const std::optional<int32_t> eos = tokenizer_->eos_id(); eos && *eos != stops.front()) stops.push_back(*eos);
  return stops;
}

std::string TextCodec::decode_completion(std::span<const int32_t> ids) const {
  if (byte_level()) return ByteTokenizer::decode(std::vector<int32_t>(ids.begin(), ids.end()));
  const std::vector<int32_t> stops = stop_tokens();
  const auto end = std::find_first_of(ids.begin(), ids.end(), stops.begin(), stops.end());
  DecodeOptions options;
  options.skip_special_tokens = true;
  return without_think_block(tokenizer_->decode(std::span<const int32_t>(ids.begin(), end), options));
}

void TextCodec::check_model_vocabulary(int64_t vocab_size) const {
  FW_INPUT_CHECK(vocab_size >= tokenizer_->vocab_size(), "model.vocab_size = ", vocab_size, " is smaller than the ",
                 tokenizer_->vocab_size(), " ids of the ", describe());
}

int32_t TextCodec::pad_id() const {
  if (byte_level()) return ByteTokenizer::kPad;
  return tokenizer_->pad_id().value_or(stop_tokens().front());
}

}  // namespace flywheel
