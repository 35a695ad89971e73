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
#include "data/tasks.h"
#include "data/data_source.h"
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
  FW_CHECK(!std::filesystem::is_directory(path, ignored), "data file '", path,
           "' is a directory; expected a file");
  std::ifstream in(path, std::ios::binary);
  FW_CHECK(in.is_open(), "cannot open data file '", path, "': ", std::strerror(errno));
  return in;
}

class TaskSource final : public DataSource {
 public:
  TaskSource(std::unique_ptr<Task> task, int max_digits, int64_t seq_len, uint64_t seed)
      : task_(std::move(task)), max_digits_(max_digits), seq_len_(seq_len), seed_(seed) {}

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
class JsonlSource final : public DataSource {
 public:
  JsonlSource(std::string path, int64_t seq_len) : path_(std::move(path)) {
    std::ifstream in = open_data_file(path_);
    std::string line;
    int64_t line_number = 0;
    while (std::getline(in, line)) {
      ++line_number;
      if (is_blank(line)) continue;
      const nlohmann::json object = parse_object(line, line_number);
      samples_.push_back(tokenize_example(string_field(object, "prompt", line_number),
                                          string_field(object, "completion", line_number), seq_len));
    }
    FW_CHECK(!in.bad(), "error reading data file '", path_, "' after line ", line_number);
    FW_CHECK(!samples_.empty(), "data file '", path_, "' contains no examples; expected one JSON object",
             " per line with string fields \"prompt\" and \"completion\"");
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
  std::string where(int64_t line_number) const {
    return detail::concat("data file '", path_, "' line ", line_number, ": ");
  }

  nlohmann::json parse_object(const std::string& line, int64_t line_number) const {
    nlohmann::json value;
    try {
      value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      FW_THROW(where(line_number), "not valid JSON (", e.what(), ")");
    }
    FW_CHECK(value.is_object(), where(line_number), "expected a JSON object with string fields \"prompt\"",
             " and \"completion\", got ", value.type_name());
    return value;
  }

  std::string string_field(const nlohmann::json& object, const char* key, int64_t line_number) const {
    const auto field = object.find(key);
    FW_CHECK(field != object.end(), where(line_number), "missing field \"", key,
             "\"; every line needs string fields \"prompt\" and \"completion\"");
    FW_CHECK(field->is_string(), where(line_number), "field \"", key, "\" must be a string, got ",
             field->type_name());
    return field->get<std::string>();
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
    FW_CHECK(!in.bad(), "error reading data file '", path_, "'");
    const auto size = static_cast<int64_t>(bytes_.size());
    FW_CHECK(size >= seq_len + 1, "text file '", path_, "' has ", size, " bytes; at least seq_len + 1 = ",
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
  FW_THROW("data source '", source, "' is not recognised; allowed forms: ", allowed_source_forms());
}

}  // namespace flywheel
