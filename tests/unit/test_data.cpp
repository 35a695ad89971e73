// Tokenizer, synthetic tasks, data sources and the sampler.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/tasks.h"
#include "data/data_source.h"
#include "data/sampler.h"
#include "data/tokenizer.h"

#include "test_util.h"

namespace flywheel {
namespace {

using Tok = ByteTokenizer;

std::string write_temp_file(const std::string& name, const std::string& contents) {
  const std::string path = ::testing::TempDir() + "flywheel_test_data_" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

using testing::error_message;

std::unique_ptr<DataSource> source_for(const std::string& spec, int64_t seq_len, uint64_t seed = 1) {
  DataConfig config;
  config.source = spec;
  return make_data_source(config, seq_len, seed);
}

// A finite source over fixed samples, for sampler tests.
class VectorSource final : public DataSource {
 public:
  explicit VectorSource(std::vector<TokenizedSample> samples) : samples_(std::move(samples)) {}
  int64_t size() const override { return static_cast<int64_t>(samples_.size()); }
  TokenizedSample sample(int64_t index) const override { return samples_.at(static_cast<size_t>(index)); }
  std::string describe() const override { return "vector"; }

 private:
  std::vector<TokenizedSample> samples_;
};

// Samples of different lengths so rows differ in padding: sample i is BOS + i letters + EOS.
VectorSource ragged_source(int count) {
  std::vector<TokenizedSample> samples;
  for (int i = 0; i < count; ++i) {
    TokenizedSample sample;
    sample.tokens = Tok::encode_sft(std::string(i % 3, 'p'), std::string(i, static_cast<char>('a' + i % 26)),
                                    &sample.loss_start);
    samples.push_back(std::move(sample));
  }
  return VectorSource(std::move(samples));
}

TEST(Tokenizer, RoundTripsEveryByteAndUtf8) {
  std::string all_bytes;
  for (int b = 0; b < 256; ++b) all_bytes.push_back(static_cast<char>(b));
  const std::string utf8 = "h\xC3\xA9llo \xE2\x9C\x93";  // "héllo ✓"
  for (const std::string& text : {all_bytes, utf8, std::string()}) {
    const std::vector<int32_t> ids = Tok::encode(text);
    ASSERT_EQ(ids.size(), text.size());
    for (int32_t id : ids) EXPECT_TRUE(id >= 0 && id < 256);
    EXPECT_EQ(Tok::decode(ids), text);
  }
  EXPECT_EQ(Tok::encode("\xFF")[0], 255);
}

TEST(Tokenizer, DecodeSkipsSpecialsAndOutOfRangeAndStopsAtEos) {
  EXPECT_EQ(Tok::decode({Tok::kBos, 'a', Tok::kPad, 'b', 999, -1, Tok::kEos, 'c'}), "ab");
  EXPECT_EQ(Tok::kVocabSize, 259);
}

TEST(Tokenizer, SftSequenceAndLossStart) {
  int64_t loss_start = -1;
  const std::vector<int32_t> ids = Tok::encode_sft("1+2=", "3", &loss_start);
  EXPECT_EQ(ids, (std::vector<int32_t>{Tok::kBos, '1', '+', '2', '=', '3', Tok::kEos}));
  EXPECT_EQ(loss_start, 5);
  EXPECT_EQ(ids[static_cast<size_t>(loss_start)], '3');  // the first completion token
  Tok::encode_sft("", "", &loss_start);
  EXPECT_EQ(loss_start, 1);
}

TEST(Task, GenerateIsAPureFunctionOfSeedAndIndex) {
  for (const std::string& name : task_names()) {
    const auto task = make_task(name, 3);
    const auto again = make_task(name, 3);
    std::set<std::string> prompts;
    for (int64_t i = 0; i < 50; ++i) {
      const TaskExample a = task->generate(7, i), b = again->generate(7, i);
      EXPECT_EQ(a.prompt, b.prompt);
      EXPECT_EQ(a.completion, b.completion);
      prompts.insert(a.prompt);
    }
    EXPECT_GE(prompts.size(), 45u) << name << ": different indices should give different examples";
    EXPECT_NE(task->generate(7, 0).prompt, task->generate(7, 1).prompt) << name;
    EXPECT_NE(task->generate(7, 0).prompt, task->generate(8, 0).prompt) << name;
  }
}

TEST(Task, AdditionCompletionIsTheTrueSum) {
  const int max_digits = 4;
  const auto task = make_task("addition", max_digits);
  EXPECT_EQ(task->name(), "addition");
  const std::regex form("(0|[1-9][0-9]*)\\+(0|[1-9][0-9]*)=");  // no leading zeros
  std::set<size_t> digit_counts;
  for (int64_t i = 0; i < 1000; ++i) {
    const TaskExample ex = task->generate(3, i);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(ex.prompt, m, form)) << ex.prompt;
    for (int k : {1, 2}) {
      EXPECT_LE(m[k].length(), max_digits) << ex.prompt;
      digit_counts.insert(static_cast<size_t>(m[k].length()));
    }
    EXPECT_EQ(ex.completion, std::to_string(std::stoll(m[1]) + std::stoll(m[2]))) << ex.prompt;
    EXPECT_EQ(task->reward(ex, ex.completion), 1.0);
    EXPECT_EQ(task->reward(ex, ex.completion + " "), 0.0);
    EXPECT_EQ(task->reward(ex, std::to_string(std::stoll(ex.completion) + 1)), 0.0);
  }
  EXPECT_EQ(digit_counts, (std::set<size_t>{1, 2, 3, 4}));
}

TEST(Task, ReverseCompletionIsTheReversedString) {
  const int max_digits = 2;
  const auto task = make_task("reverse", max_digits);
  const std::regex form("rev:([a-z]{1,4})=");
  for (int64_t i = 0; i < 300; ++i) {
    const TaskExample ex = task->generate(5, i);
    std::smatch m;
    ASSERT_TRUE(std::regex_match(ex.prompt, m, form)) << ex.prompt;
    const std::string text = m[1];
    EXPECT_EQ(ex.completion, std::string(text.rbegin(), text.rend()));
    EXPECT_EQ(task->reward(ex, ex.completion), 1.0);
    EXPECT_EQ(task->reward(ex, ex.completion + "x"), 0.0);
    EXPECT_EQ(task->reward(ex, ""), 0.0);
  }
}

TEST(Task, FactoryRejectsUnknownNamesAndBadDigits) {
  const std::string unknown = error_message([] { make_task("multiply", 3); });
  EXPECT_NE(unknown.find("multiply"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("addition, reverse"), std::string::npos) << unknown;
  for (int digits : {0, kMaxTaskDigits + 1}) {
    const std::string bad = error_message([&] { make_task("addition", digits); });
    EXPECT_NE(bad.find("data.task_max_digits = " + std::to_string(digits)), std::string::npos) << bad;
  }
  EXPECT_NO_THROW(make_task("addition", kMaxTaskDigits)->generate(1, 0));
}

TEST(Data, JsonlHappyPath) {
  const std::string path = write_temp_file(
      "happy.jsonl", "{\"prompt\": \"2+2=\", \"completion\": \"4\", \"extra\": 1}\n\n  \n"
                     "{\"completion\": \"caf\\u00e9\", \"prompt\": \"\"}\r\n");
  const auto source = source_for("jsonl:" + path, 16);
  ASSERT_EQ(source->size(), 2);
  EXPECT_NE(source->describe().find("2 examples"), std::string::npos) << source->describe();
  int64_t loss_start = 0;
  EXPECT_EQ(source->sample(0).tokens, Tok::encode_sft("2+2=", "4", &loss_start));
  EXPECT_EQ(source->sample(0).loss_start, loss_start);
  EXPECT_EQ(Tok::decode(source->sample(1).tokens), "caf\xC3\xA9");
  EXPECT_EQ(source->sample(1).loss_start, 1);
  const std::string range = error_message([&] { source->sample(2); });
  EXPECT_NE(range.find("out of range"), std::string::npos) << range;
}

TEST(Data, JsonlTruncatesLongExamplesToSeqLenPlusOne) {
  const std::string path =
      write_temp_file("long.jsonl", "{\"prompt\": \"abc\", \"completion\": \"defghijklmnop\"}\n");
  const TokenizedSample sample = source_for("jsonl:" + path, 6)->sample(0);
  EXPECT_EQ(sample.tokens, (std::vector<int32_t>{Tok::kBos, 'a', 'b', 'c', 'd', 'e', 'f'}));
  EXPECT_EQ(sample.loss_start, 4);
}

struct JsonlErrorCase {
  std::string name, bad_line, expected;
};

TEST(Data, JsonlErrorsNameTheFileAndLine) {
  const std::string good = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
  const std::vector<JsonlErrorCase> cases = {
      {"invalid.jsonl", "{\"prompt\": \"a\", ", "not valid JSON at column"},
      {"array.jsonl", "[1, 2]", "expected a JSON object"},
      {"no_prompt.jsonl", "{\"completion\": \"b\"}", "missing field \"prompt\""},
      {"no_completion.jsonl", "{\"prompt\": \"a\"}", "missing field \"completion\""},
      {"number.jsonl", "{\"prompt\": \"a\", \"completion\": 7}", "field \"completion\" must be a string, got number"},
  };
  for (const JsonlErrorCase& c : cases) {
    // Line 2 is blank, so the bad line is line 3: blank lines still count.
    const std::string path = write_temp_file(c.name, good + "\n" + c.bad_line + "\n" + good);
    const std::string message = error_message([&] { source_for("jsonl:" + path, 32); });
    EXPECT_NE(message.find(path), std::string::npos) << message;
    EXPECT_NE(message.find("line 3:"), std::string::npos) << message;
    EXPECT_NE(message.find(c.expected), std::string::npos) << message;
  }
}

TEST(Data, JsonlRefusesDuplicateKeysAndBinaryLines) {
  const std::string good = "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
  const std::string dup = write_temp_file("dup.jsonl", good + "{\"prompt\": \"a\", \"prompt\": \"b\", \"completion\": \"c\"}\n");
  std::string message = error_message([&] { source_for("jsonl:" + dup, 32); });
  EXPECT_NE(message.find("'" + dup + "' line 2: key \"prompt\" is given twice"), std::string::npos) << message;
  // Nested objects keep their own keys: the same key in two objects is fine.
  const std::string nested = write_temp_file(
      "nested.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\", \"meta\": {\"prompt\": 1, \"x\": {\"prompt\": 2}}}\n");
  EXPECT_EQ(source_for("jsonl:" + nested, 32)->size(), 1);
  const std::string deep = write_temp_file("deep.jsonl", "{\"prompt\": \"a\", \"completion\": \"b\", \"m\": {\"k\": 1, \"k\": 2}}\n");
  message = error_message([&] { source_for("jsonl:" + deep, 32); });
  EXPECT_NE(message.find("line 1: key \"k\" is given twice"), std::string::npos) << message;
  // Binary bytes are refused with their column, never echoed.
  const std::string binary = write_temp_file("binary.jsonl", good + "{\"prompt\": \"\x01\xff\xfe\"}\n");
  message = error_message([&] { source_for("jsonl:" + binary, 32); });
  EXPECT_NE(message.find("line 2: not text (byte 13 of the line"), std::string::npos) << message;
  EXPECT_EQ(message.find('\xff'), std::string::npos) << message;
  EXPECT_EQ(message.find('\x01'), std::string::npos) << message;
}

TEST(Data, JsonlExamplesWithoutALossTokenAreSkippedAndAFileOfOnlySuchIsRefused) {
  // seq_len 8: BOS + prompt must leave a position, so prompts of at most 7 bytes keep a loss token.
  const std::string fits = "{\"prompt\": \"1234567\", \"completion\": \"x\"}\n";
  const std::string too_long = "{\"prompt\": \"12345678\", \"completion\": \"x\"}\n";
  const std::string mixed = write_temp_file("mixed.jsonl", too_long + fits + too_long + fits);
  const auto source = source_for("jsonl:" + mixed, 8);
  ASSERT_EQ(source->size(), 2);
  for (int64_t i = 0; i < 2; ++i) EXPECT_EQ(source->sample(i).loss_start, 8);
  EXPECT_NE(source->describe().find("2 examples"), std::string::npos);

  std::string all_long;
  for (int i = 0; i < 7; ++i) all_long += too_long;
  const std::string path = write_temp_file("all-long.jsonl", all_long);
  const std::string message = error_message([&] { source_for("jsonl:" + path, 8); });
  EXPECT_NE(message.find("data file '" + path + "': no example keeps a completion token within train.seq_len = 8"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("lines 1, 2, 3, 4, 5 and 2 more"), std::string::npos) << message;
  EXPECT_NE(message.find("at most 7 bytes"), std::string::npos) << message;
  EXPECT_EQ(message.find("src/"), std::string::npos) << message;
}

TEST(Data, TaskPromptsNeverExceedTheirBound) {
  for (const std::string& name : task_names())
    for (int digits : {1, 3, kMaxTaskDigits}) {
      const auto task = make_task(name, digits);
      size_t longest = 0;
      for (int64_t i = 0; i < 20000; ++i) longest = std::max(longest, task->generate(7, i).prompt.size());
      EXPECT_LE(static_cast<int64_t>(longest), task->max_prompt_bytes()) << name << " " << digits;
      EXPECT_EQ(static_cast<int64_t>(longest), task->max_prompt_bytes()) << name << " " << digits << ": not attained";
    }
}

TEST(Data, ATaskWhosePromptsFillTheRowIsRefused) {
  DataConfig config;
  config.source = "task:addition";
  config.task_max_digits = 3;  // "999+999=": 8 bytes, + BOS = 9 positions
  EXPECT_NO_THROW(make_data_source(config, 9, 1));
  const std::string message = error_message([&] { make_data_source(config, 8, 1); });
  EXPECT_NE(message.find("data.source = task:addition with data.task_max_digits = 3 has prompts of up to 8 bytes"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("train.seq_len = 8"), std::string::npos) << message;
}

TEST(Sampler, ARowWithoutALossTokenIsNeverBuilt) {
  TokenizedSample sample;
  sample.tokens = Tok::encode_sft("abcdef", "g", &sample.loss_start);  // the loss starts at token 7
  const VectorSource source({sample});
  EXPECT_EQ(Sampler(source, 0, 7).make_batch(0, 1).loss_tokens(), 1);
  const std::string message = error_message([&] { Sampler(source, 0, 6).make_batch(0, 1); });
  EXPECT_NE(message.find("keeps no loss token"), std::string::npos) << message;
}

TEST(Data, JsonlMissingAndEmptyFiles) {
  const std::string missing = ::testing::TempDir() + "flywheel_test_data_does_not_exist.jsonl";
  const std::string not_found = error_message([&] { source_for("jsonl:" + missing, 8); });
  EXPECT_NE(not_found.find(missing), std::string::npos) << not_found;
  EXPECT_NE(not_found.find("No such file"), std::string::npos) << not_found;

  const std::string empty = write_temp_file("empty.jsonl", "\n  \n");
  const std::string no_examples = error_message([&] { source_for("jsonl:" + empty, 8); });
  EXPECT_NE(no_examples.find(empty), std::string::npos) << no_examples;
  EXPECT_NE(no_examples.find("no examples"), std::string::npos) << no_examples;
}

TEST(Data, TextWindowsOverlapByOneToken) {
  const std::string path = write_temp_file("ten.txt", "abcdefghijXY");  // 12 bytes, tail "XY" partly dropped
  const auto source = source_for("text:" + path, 3);
  ASSERT_EQ(source->size(), 3);  // (12 - 1) / 3 windows of 4 tokens
  const std::vector<std::string> expected = {"abcd", "defg", "ghij"};
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(source->sample(i).tokens, Tok::encode(expected[static_cast<size_t>(i)]));
    EXPECT_EQ(source->sample(i).loss_start, 1);
  }
  EXPECT_EQ(source_for("text:" + path, 11)->size(), 1);  // exactly seq_len + 1 bytes: one window
}

TEST(Data, TextShorterThanOneWindowIsAnError) {
  const std::string path = write_temp_file("short.txt", "hello");
  const std::string message = error_message([&] { source_for("text:" + path, 5); });
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("has 5 bytes"), std::string::npos) << message;
  EXPECT_NE(message.find("= 6"), std::string::npos) << message;
}

TEST(Data, TaskSourceTokenizesTaskExamples) {
  DataConfig config;
  config.source = "task:reverse";
  config.task_max_digits = 2;
  const auto source = make_data_source(config, 64, 9);
  EXPECT_EQ(source->size(), 0);
  const auto task = make_task("reverse", 2);
  for (int64_t i = 0; i < 20; ++i) {
    const TaskExample ex = task->generate(9, i);
    int64_t loss_start = 0;
    EXPECT_EQ(source->sample(i).tokens, Tok::encode_sft(ex.prompt, ex.completion, &loss_start));
    EXPECT_EQ(source->sample(i).loss_start, loss_start);
  }
}

TEST(Data, UnknownSourceListsTheAllowedForms) {
  for (const std::string spec : {"csv:foo.csv", "jsonl:", "addition", ""}) {
    const std::string message = error_message([&] { source_for(spec, 8); });
    EXPECT_NE(message.find("'" + spec + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("task:<name>"), std::string::npos) << message;
    EXPECT_NE(message.find("jsonl:<path>"), std::string::npos) << message;
    EXPECT_NE(message.find("text:<path>"), std::string::npos) << message;
  }
  const std::string bad_task = error_message([] { source_for("task:sort", 8); });
  EXPECT_NE(bad_task.find("addition, reverse"), std::string::npos) << bad_task;
}

TEST(Sampler, EachEpochIsAFreshPermutation) {
  const VectorSource source = ragged_source(10);
  const Sampler sampler(source, 42, 16);
  std::vector<std::vector<int64_t>> epochs(3);
  for (int64_t g = 0; g < 30; ++g) epochs[static_cast<size_t>(g / 10)].push_back(sampler.dataset_index(g));
  for (const auto& order : epochs) {
    std::vector<int64_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[1], epochs[2]);
  EXPECT_EQ(epochs[1], epoch_permutation(42, 1, 10));
  EXPECT_NE(epoch_permutation(42, 0, 10), epoch_permutation(43, 0, 10));
  // Going back to an earlier epoch (cache miss) gives the same answer.
  EXPECT_EQ(sampler.dataset_index(3), epochs[0][3]);
}

TEST(Sampler, GeneratedSourcesUseTheIndexItself) {
  const auto source = source_for("task:addition", 16);
  const Sampler sampler(*source, 42, 16);
  for (int64_t g : {0, 1, 17, 123456789}) EXPECT_EQ(sampler.dataset_index(g), g);
}

void expect_same_rows(const Batch& whole, const Batch& part, int64_t first_row) {
  const auto offset = static_cast<size_t>(first_row * whole.seq);
  const auto cells = static_cast<size_t>(part.rows * part.seq);
  ASSERT_EQ(part.seq, whole.seq);
  for (size_t i = 0; i < cells; ++i) {
    ASSERT_EQ(part.tokens[i], whole.tokens[offset + i]) << "row " << first_row << " cell " << i;
    ASSERT_EQ(part.targets[i], whole.targets[offset + i]) << "row " << first_row << " cell " << i;
    ASSERT_EQ(part.loss_mask[i], whole.loss_mask[offset + i]) << "row " << first_row << " cell " << i;
  }
}

TEST(Sampler, SplitBatchesConcatenateToTheWholeBatch) {
  const VectorSource finite = ragged_source(7);
  const auto generated = source_for("task:addition", 12);
  for (const DataSource* source : std::vector<const DataSource*>{&finite, generated.get()}) {
    const Sampler sampler(*source, 5, 12);
    const int64_t first = 4, rows = 12;  // crosses epoch boundaries of the 7-sample source
    const Batch whole = sampler.make_batch(first, rows);
    ASSERT_EQ(whole.tokens.size(), static_cast<size_t>(rows * 12));
    for (int64_t k = 0; k <= rows; ++k) {
      const Sampler fresh(*source, 5, 12);  // a different rank has its own sampler and cache
      const Batch head = fresh.make_batch(first, k);
      const Batch tail = sampler.make_batch(first + k, rows - k);
      EXPECT_EQ(head.rows + tail.rows, rows);
      expect_same_rows(whole, head, 0);
      expect_same_rows(whole, tail, k);
      EXPECT_EQ(head.loss_tokens() + tail.loss_tokens(), whole.loss_tokens());
    }
  }
}

TEST(Sampler, LossMaskCoversTheCompletionAndPaddingIsMasked) {
  TokenizedSample sample;
  sample.tokens = Tok::encode_sft("ab", "c", &sample.loss_start);  // BOS a b c EOS, loss_start 3
  const VectorSource source({sample});
  const Batch batch = Sampler(source, 0, 6).make_batch(0, 1);
  const int32_t P = Tok::kPad;
  EXPECT_EQ(batch.tokens, (std::vector<int32_t>{Tok::kBos, 'a', 'b', 'c', P, P}));
  EXPECT_EQ(batch.targets, (std::vector<int32_t>{'a', 'b', 'c', Tok::kEos, P, P}));
  EXPECT_EQ(batch.loss_mask, (std::vector<float>{0, 0, 1, 1, 0, 0}));
  EXPECT_EQ(batch.loss_tokens(), 2);

  // Rows shorter than the sample are cut at the end.
  const Batch cut = Sampler(source, 0, 3).make_batch(0, 1);
  EXPECT_EQ(cut.targets, (std::vector<int32_t>{'a', 'b', 'c'}));
  EXPECT_EQ(cut.loss_mask, (std::vector<float>{0, 0, 1}));
}

}  // namespace
}  // namespace flywheel
