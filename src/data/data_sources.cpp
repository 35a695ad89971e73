// The DataSource implementations behind make_data_source: generated task examples, JSONL
// prompt/completion files and plain-text files.
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "data/data_source.h"
#include "data/json_line.h"
#include "data/tasks.h"
#include "data/chat_data.h"
#include "data/text_codec.h"
#include "data/tokenizer.h"

namespace flywheel {
namespace {

TokenizedSample tokenize_example(const TextCodec& codec, std::string_view prompt, std::string_view completion,
                                 int64_t seq_len) {
  TokenizedSample sample = codec.encode_example(prompt, completion);
  // Cut at the end (see make_data_source): the prompt is what the model must condition on.
  const auto max_tokens = static_cast<size_t>(seq_len + 1);
  if (sample.tokens.size() > max_tokens) sample.tokens.resize(max_tokens);
  if (sample.loss.size() > max_tokens) sample.loss.resize(max_tokens);
  return sample;
}

void check_index(const DataSource& source, int64_t index) {
  FW_CHECK(index >= 0 && index < source.size(), "sample index ", index, " is out of range for ",
           source.describe(), "; allowed: 0..", source.size() - 1);
}

// Opens a data file, or throws naming it and saying why not.
std::ifstream open_data_file(const std::string& path) {
  std::error_code ignored;
  FW_INPUT_CHECK(!std::filesystem::is_directory(path, ignored), "data file '", path,
                 "' is a directory; expected a file");
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in.is_open(), "cannot open data file '", path, "': ", std::strerror(errno));
  return in;
}

// A row predicts tokens[1..seq_len] and the loss counts the targets among them (the completion
// and EOS, which always follow the prompt): an example keeps a loss token iff one is within seq_len.
bool keeps_loss_token(const TokenizedSample& sample, int64_t seq_len) {
  const size_t last = std::min(sample.tokens.size(), static_cast<size_t>(seq_len + 1));
  for (size_t i = 1; i < last; ++i)
    if (sample.is_target(i)) return true;
  return false;
}

class TaskSource final : public DataSource {
 public:
  TaskSource(std::shared_ptr<const TextCodec> codec, std::unique_ptr<Task> task, int max_digits, int64_t seq_len,
             uint64_t seed)
      : codec_(std::move(codec)), task_(std::move(task)), max_digits_(max_digits), seq_len_(seq_len), seed_(seed) {
    // Examples are generated, so the bound on their prompts stands for all of them: a byte-level
    // tokenizer spends at most one token per byte, plus the prompt's framing (BOS, or chat headers).
    const int64_t longest = task_->max_prompt_bytes();
    const auto framing = static_cast<int64_t>(codec_->encode_prompt("").size());
    FW_INPUT_CHECK(framing + longest <= seq_len, "data.source = task:", task_->name(), " with data.task_max_digits = ",
                   max_digits, " has prompts of up to ", longest, " bytes, so with ",
                   codec_->byte_level() ? "BOS" : "the chat format's headers", " no answer token fits in",
                   " train.seq_len = ", seq_len, " and such examples would train on nothing: raise train.seq_len to",
                   " at least ", framing + longest, " (", framing + longest + 1,
                   "+ to keep answers whole) or lower data.task_max_digits");
  }

  int64_t size() const override { return 0; }

  TokenizedSample sample(int64_t index) const override {
    const TaskExample example = task_->generate(seed_, index);
    return tokenize_example(*codec_, example.prompt, example.completion, seq_len_);
  }

  std::string describe() const override {
    return detail::concat("task:", task_->name(), " (generated, max_digits=", max_digits_, ")");
  }

 private:
  std::shared_ptr<const TextCodec> codec_;
  std::unique_ptr<Task> task_;
  int max_digits_;
  int64_t seq_len_;
  uint64_t seed_;
};

bool is_blank(const std::string& line) {
  for (char c : line) {
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// One JSON object per line with string fields "prompt" and "completion"; other fields are
// ignored. The whole file is parsed and tokenized up front so errors surface at start-up.
// An example whose prompt leaves no completion token within seq_len would add nothing to a step
// but its share of the batch: it is skipped with a warning naming its lines, and a file where every
// example is such is refused (training on it would report loss 0 and learn nothing).
class JsonlSource final : public DataSource {
 public:
  JsonlSource(const TextCodec& codec, std::string path, int64_t seq_len) : path_(std::move(path)) {
    std::ifstream in = open_data_file(path_);
    std::string line;
    int64_t line_number = 0;
    std::vector<int64_t> skipped;  // lines whose example keeps no loss token
    while (std::getline(in, line)) {
      ++line_number;
      if (is_blank(line)) continue;
      const nlohmann::json object = parse_object_line(line, where(line_number), kExpected);
      TokenizedSample sample = tokenize_example(codec, string_field(object, "prompt", line_number),
                                                string_field(object, "completion", line_number), seq_len);
      if (keeps_loss_token(sample, seq_len))
        samples_.push_back(std::move(sample));
      else
        skipped.push_back(line_number);
    }
    FW_INPUT_CHECK(!in.bad(), "error reading data file '", path_, "' after line ", line_number);
    FW_INPUT_CHECK(!samples_.empty() || !skipped.empty(), "data file '", path_, "' contains no examples; expected ",
                   kExpected, " per line");
    FW_INPUT_CHECK(!samples_.empty(), "data file '", path_, "': no example keeps a completion token within",
                   " train.seq_len = ", seq_len, " (",
                   codec.byte_level() ? "BOS + prompt take" : "the chat-framed prompt takes",
                   " all ", seq_len, " positions) on ", lines_text(skipped), ": shorten the prompts",
                   codec.byte_level() ? detail::concat(" to at most ", seq_len - 1, " bytes") : std::string(),
                   " or raise train.seq_len");
    if (!skipped.empty())
      log_warn("data file '", path_, "': ", skipped.size(), " of ", skipped.size() + samples_.size(),
               " examples keep no completion token within train.seq_len = ", seq_len, " and are skipped (",
               lines_text(skipped), ")");
  }

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }

  TokenizedSample sample(int64_t index) const override {
    check_index(*this, index);
    return samples_[static_cast<size_t>(index)];
  }

  std::string describe() const override {
    return detail::concat("jsonl:", path_, " (", samples_.size(), " examples)");
  }

 private:
  static constexpr const char* kExpected = "a JSON object with string fields \"prompt\" and \"completion\"";

  std::string where(int64_t line_number) const {
    return detail::concat("data file '", path_, "' line ", line_number, ": ");
  }

  std::string string_field(const nlohmann::json& object, const char* key, int64_t line_number) const {
    const auto field = object.find(key);
    FW_INPUT_CHECK(field != object.end(), where(line_number), "missing field \"", key,
                   "\"; every line needs string fields \"prompt\" and \"completion\"");
    FW_INPUT_CHECK(field->is_string(), where(line_number), "field \"", key, "\" must be a string, got ",
                   field->type_name());
    return field->get<std::string>();
  }

  // "lines 3, 5, 9 and 4 more": the first offending lines, and how many others.
  static std::string lines_text(const std::vector<int64_t>& lines) {
    constexpr size_t kShown = 5;
    std::string text = lines.size() == 1 ? "line " : "lines ";
    for (size_t i = 0; i < std::min(lines.size(), kShown); ++i) text += (i ? ", " : "") + std::to_string(lines[i]);
    if (lines.size() > kShown) text += detail::concat(" and ", lines.size() - kShown, " more");
    return text;
  }

  std::string path_;
  std::vector<TokenizedSample> samples_;
};

// The file's tokens (its bytes, with the byte tokenizer) cut into windows of seq_len + 1 tokens
// with stride seq_len: consecutive windows share one token, so every token after the first is a
// target exactly once. A tail shorter than a full window is dropped.
class TextSource final : public DataSource {
 public:
  TextSource(const TextCodec& codec, std::string path, int64_t seq_len) : path_(std::move(path)), seq_len_(seq_len) {
    std::ifstream in = open_data_file(path_);
    const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    FW_INPUT_CHECK(!in.bad(), "error reading data file '", path_, "'");
    bytes_ = static_cast<int64_t>(text.size());
    tokens_ = codec.tokenizer().encode(text);
    const auto size = static_cast<int64_t>(tokens_.size());
    FW_INPUT_CHECK(size >= seq_len + 1, "text file '", path_, "' has ", bytes_, " bytes, ", size,
                   " tokens; at least train.seq_len + 1 = ", seq_len + 1, " tokens are needed for one window");
    window_count_ = (size - 1) / seq_len;
  }

  int64_t size() const override { return window_count_; }

  TokenizedSample sample(int64_t index) const override {
    check_index(*this, index);
    const auto first = tokens_.begin() + index * seq_len_;
    return TokenizedSample{std::vector<int32_t>(first, first + seq_len_ + 1), 1, {}};
  }

  std::string describe() const override {
    return detail::concat("text:", path_, " (", bytes_, " bytes, ", tokens_.size(), " tokens, ", window_count_,
                          " windows of ", seq_len_ + 1, " tokens)");
  }

 private:
  std::string path_;
  int64_t seq_len_;
  int64_t bytes_ = 0;
  std::vector<int32_t> tokens_;
  int64_t window_count_ = 0;
};

// Chat JSONL (data/chat_data.h: {"messages": [...]} per line, ending with an assistant turn),
// rendered with the model's chat format, loss on every assistant turn. A conversation longer than
// a row is refused (cutting it would train on half a turn and lose its end-of-turn token).
class ChatSource final : public DataSource {
 public:
  ChatSource(const TextCodec& codec, std::string path, int64_t seq_len) : path_(std::move(path)) {
    FW_INPUT_CHECK(!codec.byte_level(), "data.source = chat:", path_, " needs a Hugging Face tokenizer and its chat ",
                   "format: set data.tokenizer (or model.from_hf) to a directory with tokenizer.json");
    for (const ChatExample& example : read_chat_examples(path_)) {
      TokenizedSample sample = codec.encode_conversation(example.messages);
      FW_INPUT_CHECK(static_cast<int64_t>(sample.tokens.size()) <= seq_len + 1, "data file '", path_, "' line ",
                     example.line, ": the conversation is ", sample.tokens.size(), " tokens, longer than a row of ",
                     "train.seq_len + 1 = ", seq_len + 1, " tokens: raise train.seq_len or shorten it");
      tokens_ += static_cast<int64_t>(sample.tokens.size());
      samples_.push_back(std::move(sample));
    }
  }

  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }

  TokenizedSample sample(int64_t index) const override {
    check_index(*this, index);
    return samples_[static_cast<size_t>(index)];
  }

  std::string describe() const override {
    return detail::concat("chat:", path_, " (", samples_.size(), " conversations, ", tokens_, " tokens)");
  }

 private:
  std::string path_;
  std::vector<TokenizedSample> samples_;
  int64_t tokens_ = 0;
};

std::string allowed_source_forms() {
  std::string tasks;
  for (const std::string& name : task_names()) tasks += (tasks.empty() ? "" : ", ") + name;
  return "task:<name> (name one of: " + tasks + "), jsonl:<path>, chat:<path>, text:<path>";
}

}  // namespace

std::unique_ptr<DataSource> make_data_source(const DataConfig& config, int64_t seq_len, uint64_t seed) {
  FW_CHECK(seq_len >= 1, "seq_len=", seq_len, " must be >= 1");
  const std::shared_ptr<const TextCodec> codec = TextCodec::open(config);
  const std::string& source = config.source;
  const size_t colon = source.find(':');
  if (colon != std::string::npos && colon + 1 < source.size()) {
    const std::string kind = source.substr(0, colon);
    const std::string rest = source.substr(colon + 1);
    if (kind == "task") {
      auto task = make_task(rest, config.task_max_digits);
      return std::make_unique<TaskSource>(codec, std::move(task), config.task_max_digits, seq_len, seed);
    }
    if (kind == "jsonl") return std::make_unique<JsonlSource>(*codec, rest, seq_len);
    if (kind == "chat") return std::make_unique<ChatSource>(*codec, rest, seq_len);
    if (kind == "text") return std::make_unique<TextSource>(*codec, rest, seq_len);
  }
  FW_INPUT_THROW("data.source = '", source, "' is not recognised; allowed forms: ", allowed_source_forms());
}

}  // namespace flywheel
