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
#include "data/tokenizer.h"

namespace flywheel {
namespace {

TokenizedSample tokenize_example(std::string_view prompt, std::string_view completion, int64_t seq_len) {
  TokenizedSample sample;
  sample.tokens = ByteTokenizer::encode_sft(prompt, completion, &sample.loss_start);
  // Cut at the end (see make_data_source): the prompt is what the model must condition on.
  const auto max_tokens = static_cast<size_t>(seq_len + 1);
  if (sample.tokens.size() > max_tokens) sample.tokens.resize(max_tokens);
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

// A row predicts tokens[1..seq_len] and the loss counts those at i >= loss_start (the completion
// and EOS, which always follow the prompt): an example keeps a loss token iff loss_start <= seq_len.
bool keeps_loss_token(const TokenizedSample& sample, int64_t seq_len) { return sample.loss_start <= seq_len; }

class TaskSource final : public DataSource {
 public:
  TaskSource(std::unique_ptr<Task> task, int max_digits, int64_t seq_len, uint64_t seed)
      : task_(std::move(task)), max_digits_(max_digits), seq_len_(seq_len), seed_(seed) {
    // Examples are generated, so the bound on their prompts stands for all of them.
    const int64_t longest = task_->max_prompt_bytes();
    FW_INPUT_CHECK(1 + longest <= seq_len, "data.source = task:", task_->name(), " with data.task_max_digits = ",
                   max_digits, " has prompts of up to ", longest, " bytes, so with BOS no answer token fits in",
                   " train.seq_len = ", seq_len, " and such examples would train on nothing: raise train.seq_len to",
                   " at least ", 1 + longest, " (", 1 + longest + 1, "+ to keep answers whole) or lower",
                   " data.task_max_digits");
  }

  int64_t size() const override { return 0; }

  TokenizedSample sample(int64_t index) const override {
    const TaskExample example = task_->generate(seed_, index);
    return tokenize_example(example.prompt, example.completion, seq_len_);
  }

  std::string describe() const override {
    return detail::concat("task:", task_->name(), " (generated, max_digits=", max_digits_, ")");
  }

 private:
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
  JsonlSource(std::string path, int64_t seq_len) : path_(std::move(path)) {
    std::ifstream in = open_data_file(path_);
    std::string line;
    int64_t line_number = 0;
    std::vector<int64_t> skipped;  // lines whose example keeps no loss token
    while (std::getline(in, line)) {
      ++line_number;
      if (is_blank(line)) continue;
      const nlohmann::json object = parse_object_line(line, where(line_number), kExpected);
      TokenizedSample sample = tokenize_example(string_field(object, "prompt", line_number),
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
                   " train.seq_len = ", seq_len, " (BOS + prompt take all ", seq_len, " positions) on ",
                   lines_text(skipped), ": shorten the prompts to at most ", seq_len - 1,
                   " bytes or raise train.seq_len");
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

// The file's bytes cut into windows of seq_len + 1 tokens with stride seq_len: consecutive
// windows share one token, so every byte after the first is a target exactly once. A tail
// shorter than a full window is dropped.
class TextSource final : public DataSource {
 public:
  TextSource(std::string path, int64_t seq_len) : path_(std::move(path)), seq_len_(seq_len) {
    std::ifstream in = open_data_file(path_);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    FW_INPUT_CHECK(!in.bad(), "error reading data file '", path_, "'");
    const auto size = static_cast<int64_t>(bytes_.size());
    FW_INPUT_CHECK(size >= seq_len + 1, "text file '", path_, "' has ", size, " bytes; at least train.seq_len + 1 = ",
                   seq_len + 1, " are needed for one window");
    window_count_ = (size - 1) / seq_len;
  }

  int64_t size() const override { return window_count_; }

  TokenizedSample sample(int64_t index) const override {
    check_index(*this, index);
    const std::string_view window(bytes_.data() + index * seq_len_, static_cast<size_t>(seq_len_ + 1));
    return TokenizedSample{ByteTokenizer::encode(window), 1};
  }

  std::string describe() const override {
    return detail::concat("text:", path_, " (", bytes_.size(), " bytes, ", window_count_, " windows of ",
                          seq_len_ + 1, " tokens)");
  }

 private:
  std::string path_;
  int64_t seq_len_;
  std::string bytes_;
  int64_t window_count_ = 0;
};

std::string allowed_source_forms() {
  std::string tasks;
  for (const std::string& name : task_names()) tasks += (tasks.empty() ? "" : ", ") + name;
  return "task:<name> (name one of: " + tasks + "), jsonl:<path>, text:<path>";
}

}  // namespace

std::unique_ptr<DataSource> make_data_source(const DataConfig& config, int64_t seq_len, uint64_t seed) {
  FW_CHECK(seq_len >= 1, "seq_len=", seq_len, " must be >= 1");
  const std::string& source = config.source;
  const size_t colon = source.find(':');
  if (colon != std::string::npos && colon + 1 < source.size()) {
    const std::string kind = source.substr(0, colon);
    const std::string rest = source.substr(colon + 1);
    if (kind == "task") {
      auto task = make_task(rest, config.task_max_digits);
      return std::make_unique<TaskSource>(std::move(task), config.task_max_digits, seq_len, seed);
    }
    if (kind == "jsonl") return std::make_unique<JsonlSource>(rest, seq_len);
    if (kind == "text") return std::make_unique<TextSource>(rest, seq_len);
  }
  FW_INPUT_THROW("data.source = '", source, "' is not recognised; allowed forms: ", allowed_source_forms());
}

}  // namespace flywheel
