// The RL data files: rollout files (src/rl/rollout_file.h) -- the round trip through an external
// scorer (tools/score_rollouts_example.py), exactness of tokens and logprobs, validation errors -- and
// DPO preference pairs (src/data/preference_data.h): tokenization into rows and errors naming file:line.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "core/error.h"
#include "data/preference_data.h"
#include "train/preference_rows.h"
#include "rl/rollout_file.h"
#include "data/tokenizer.h"

namespace flywheel {
namespace {

std::string temp_path(const std::string& name) {
  const std::string dir = ::testing::TempDir() + "/flywheel-rollouts";
  std::filesystem::create_directories(dir);
  return dir + "/" + name;
}

Rollout make_rollout(const std::string& id, int64_t group, const std::string& prompt, const std::string& completion) {
  Rollout r;
  r.id = id;
  r.step = 12;
  r.group = group;
  r.prompt = prompt;
  r.completion = completion;
  r.prompt_tokens = ByteTokenizer::encode(prompt);
  r.prompt_tokens.insert(r.prompt_tokens.begin(), ByteTokenizer::kBos);
  r.completion_tokens = ByteTokenizer::encode(completion);
  r.completion_tokens.push_back(ByteTokenizer::kEos);
  for (size_t i = 0; i < r.completion_tokens.size(); ++i) r.logprobs.push_back(-0.1f * static_cast<float>(i + 1) / 3.0f);
  return r;
}

std::vector<Rollout> sample_rollouts() {
  return {make_rollout("s12-g0-k0", 0, "rev:abc=", "cba"), make_rollout("s12-g0-k1", 0, "rev:abc=", "abc"),
          make_rollout("s12-g1-k0", 1, "rev:xy=", "yx"), make_rollout("s12-g1-k1", 1, "rev:xy=", "\xff\xfe")};
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void expect_error_contains(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(RolloutFile, RoundTripKeepsTokensAndLogprobsExactly) {
  const std::vector<Rollout> written = sample_rollouts();
  const std::string path = temp_path("round.jsonl");
  write_rollouts(path, written);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const std::vector<Rollout> read = read_rollouts(path, false);
  ASSERT_EQ(read.size(), written.size());
  for (size_t i = 0; i < read.size(); ++i) {
    EXPECT_EQ(read[i].id, written[i].id);
    EXPECT_EQ(read[i].step, written[i].step);
    EXPECT_EQ(read[i].group, written[i].group);
    EXPECT_EQ(read[i].prompt, written[i].prompt);
    EXPECT_EQ(read[i].prompt_tokens, written[i].prompt_tokens);
    EXPECT_EQ(read[i].completion_tokens, written[i].completion_tokens);
    EXPECT_EQ(read[i].logprobs, written[i].logprobs);  // bit-exact: float -> JSON double -> float
  }
  EXPECT_EQ(read[0].completion, "cba");
  EXPECT_EQ(read[3].completion, "\xEF\xBF\xBD\xEF\xBF\xBD");  // invalid UTF-8 shown as U+FFFD; tokens exact
  EXPECT_THROW(read_rollouts(path, true), Error);               // no rewards yet
}

TEST(RolloutFile, ChatPromptRolloutsCarryTheirMessagesAndFields) {
  std::vector<Rollout> written = sample_rollouts();
  written[1].messages = {{ChatRole::kSystem, "Sum only."}, {ChatRole::kUser, "9+8="}};
  written[1].fields = nlohmann::json{{"answer", "17"}, {"id", 4}};
  const std::string path = temp_path("chat.jsonl");
  write_rollouts(path, written);
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), written.size());
  EXPECT_FALSE(lines[0].contains("messages"));  // a task prompt's rollout has neither
  EXPECT_FALSE(lines[0].contains("fields"));
  EXPECT_EQ(lines[1]["messages"], nlohmann::json::parse(R"([{"role": "system", "content": "Sum only."},
                                                          {"role": "user", "content": "9+8="}])"));
  EXPECT_EQ(lines[1]["fields"], nlohmann::json::parse(R"({"answer": "17", "id": 4})"));
  EXPECT_EQ(read_rollouts(path, false).size(), written.size());  // reading back ignores both
}

TEST(RolloutFile, ExampleScorerAddsRewards) {
  const std::vector<Rollout> written = sample_rollouts();
  const std::string in = temp_path("to_score.jsonl"), out = temp_path("scored.jsonl");
  std::filesystem::remove(out);
  write_rollouts(in, written);
  const std::string command = std::string("python3 ") + FLYWHEEL_SOURCE_DIR + "/tools/score_rollouts_example.py '" +
                              in + "' '" + out + "'";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  EXPECT_EQ(read_scored_rollouts(out, written), (std::vector<double>{1.0, 0.0, 1.0, 0.0}));
}

TEST(RolloutFile, ScoredLinesMayComeBackInAnyOrder) {
  const std::vector<Rollout> written = sample_rollouts();
  const std::string path = temp_path("reordered.jsonl");
  std::vector<Rollout> scored(written.rbegin(), written.rend());
  write_rollouts(path, scored);
  std::string text = read_text(path), with_rewards;
  double reward = 0.25;
  for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos; start = end + 1, reward += 1)
    with_rewards += text.substr(start, end - start - 1) + ", \"reward\": " + std::to_string(reward) + "}\n";
  write_text(path, with_rewards);
  EXPECT_EQ(read_scored_rollouts(path, written), (std::vector<double>{3.25, 2.25, 1.25, 0.25}));
}

TEST(RolloutFile, ScoredFileErrorsNameFileLineAndId) {
  const std::vector<Rollout> written = sample_rollouts();
  const std::string base = temp_path("base.jsonl");
  write_rollouts(base, written);
  std::vector<std::string> lines;
  {
    std::ifstream in(base);
    for (std::string line; std::getline(in, line);) lines.push_back(line.substr(0, line.size() - 1));
  }
  // Writes the base lines with `tail` appended inside each object, line `bad` replaced by `replacement`.
  auto scored = [&](const std::string& name, size_t bad, const std::string& replacement, size_t count = 4) {
    const std::string path = temp_path(name);
    std::string text;
    for (size_t i = 0; i < count; ++i) text += (i == bad ? replacement : lines[i] + ", \"reward\": 1}") + "\n";
    write_text(path, text);
    return path;
  };
  auto read = [&](const std::string& path) { read_scored_rollouts(path, written); };
  expect_error_contains([&] { read(scored("no_reward.jsonl", 1, lines[1] + "}")); },
                        "no_reward.jsonl' line 2: missing field \"reward\"");
  expect_error_contains([&] { read(scored("str_reward.jsonl", 0, lines[0] + ", \"reward\": \"1\"}")); },
                        "str_reward.jsonl' line 1: field \"reward\" must be a number, got string");
  expect_error_contains([&] { read(scored("nan.jsonl", 2, lines[2] + ", \"reward\": NaN}")); },
                        "nan.jsonl' line 3: not valid JSON");
  expect_error_contains([&] { read(scored("huge.jsonl", 2, lines[2] + ", \"reward\": 1e999}")); }, "huge.jsonl' line 3");
  expect_error_contains([&] { read(scored("missing.jsonl", 99, "", 3)); }, "has no line for id 's12-g1-k1'");
  expect_error_contains([&] { read(scored("dup.jsonl", 3, lines[0] + ", \"reward\": 1}")); },
                        "dup.jsonl' line 4: id 's12-g0-k0' repeats line 1");
  std::string other = lines[1];
  other.replace(other.find("s12-g0-k1"), 9, "s99-g0-k1");
  expect_error_contains([&] { read(scored("unknown.jsonl", 1, other + ", \"reward\": 1}")); },
                        "unknown.jsonl' line 2: id 's99-g0-k1' was not among the 4 rollouts written");
  std::string moved = lines[2];
  moved.replace(moved.find("\"group\":1"), 9, "\"group\":7");
  expect_error_contains([&] { read(scored("group.jsonl", 2, moved + ", \"reward\": 1}")); },
                        "group.jsonl' line 3: id 's12-g1-k0' has step 12 group 7");
  std::string tokens = lines[0];
  tokens.replace(tokens.find("[99,98,97,257]"), 14, "[99,98,98,257]");
  expect_error_contains([&] { read(scored("tokens.jsonl", 0, tokens + ", \"reward\": 1}")); },
                        "tokens.jsonl' line 1: id 's12-g0-k0' has prompt_tokens or completion_tokens that differ");
  expect_error_contains([&] { read(scored("array.jsonl", 0, "[1]")); }, "array.jsonl' line 1: expected a JSON object");
}

TEST(RolloutFile, WriteRejectsBadRollouts) {
  std::vector<Rollout> rollouts = sample_rollouts();
  rollouts[2].id = rollouts[0].id;
  EXPECT_THROW(write_rollouts(temp_path("dup_ids.jsonl"), rollouts), Error);
  rollouts = sample_rollouts();
  rollouts[1].logprobs.pop_back();
  EXPECT_THROW(write_rollouts(temp_path("short.jsonl"), rollouts), Error);
  rollouts = sample_rollouts();
  rollouts[1].logprobs[0] = -INFINITY;
  EXPECT_THROW(write_rollouts(temp_path("inf.jsonl"), rollouts), Error);
  rollouts = sample_rollouts();
  rollouts[0].id.clear();
  EXPECT_THROW(write_rollouts(temp_path("empty_id.jsonl"), rollouts), Error);
}

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = temp_path(name);
  std::ofstream(path) << text;
  return path;
}

TEST(DpoPreferenceData, TokenizesPairsLikeSftRows) {
  const std::string path = write_file("pairs.jsonl", "{\"prompt\": \"ab\", \"chosen\": \"c\", \"rejected\": \"xyz\"}\n\n"
                                                     "{\"prompt\": \"q\", \"chosen\": \"\", \"rejected\": \"r\", \"x\": 1}\n");
  const std::vector<PreferencePair> pairs = read_preference_jsonl(path, 5);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[1].line, 3);
  const LossBatch b = make_preference_batch(*TextCodec::open(DataConfig{}), pairs, {1, 0}, 5);
  EXPECT_EQ(b.rows, 4);
  EXPECT_EQ(b.pair_id, (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(b.chosen, (std::vector<int8_t>{1, 0, 1, 0}));
  using Ids = std::vector<int32_t>;
  using Mask = std::vector<float>;
  const int32_t B = ByteTokenizer::kBos, E = ByteTokenizer::kEos, P = ByteTokenizer::kPad;
  // Row 2 = chosen of pair "ab" -> "c": BOS a b c EOS; targets a b c EOS; mask on c and EOS.
  EXPECT_EQ(Ids(b.tokens.begin() + 10, b.tokens.begin() + 15), (Ids{B, 'a', 'b', 'c', P}));
  EXPECT_EQ(Ids(b.targets.begin() + 10, b.targets.begin() + 15), (Ids{'a', 'b', 'c', E, P}));
  EXPECT_EQ(Mask(b.mask.begin() + 10, b.mask.begin() + 15), (Mask{0, 0, 1, 1, 0}));
  // Row 3 = rejected "xyz": BOS a b x y z EOS is cut at seq + 1 = 6 tokens.
  EXPECT_EQ(Ids(b.targets.begin() + 15, b.targets.end()), (Ids{'a', 'b', 'x', 'y', 'z'}));
  EXPECT_EQ(Mask(b.mask.begin() + 15, b.mask.end()), (Mask{0, 0, 1, 1, 1}));
  // Row 0 = chosen "" of pair "q": only EOS is a target in the loss.
  EXPECT_EQ(Mask(b.mask.begin(), b.mask.begin() + 5), (Mask{0, 1, 0, 0, 0}));
  EXPECT_THROW(make_preference_batch(*TextCodec::open(DataConfig{}), pairs, {2}, 5), Error);
}

TEST(DpoPreferenceData, ErrorsNameFileLineAndField) {
  const std::string ok = "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n";
  auto read = [](const std::string& name, const std::string& text) { read_preference_jsonl(write_file(name, text), 8); };
  expect_error_contains([&] { read("m.jsonl", ok + "{\"prompt\": \"a\", \"chosen\": \"b\"}\n"); },
                        "m.jsonl' line 2: missing field \"rejected\"");
  expect_error_contains([&] { read("t.jsonl", "{\"prompt\": \"a\", \"chosen\": 3, \"rejected\": \"c\"}\n"); },
                        "t.jsonl' line 1: field \"chosen\" must be a string, got number");
  expect_error_contains([&] { read("j.jsonl", ok + ok + "{nope\n"); }, "j.jsonl' line 3: not valid JSON");
  expect_error_contains([&] { read("a.jsonl", "[1, 2]\n"); }, "a.jsonl' line 1: expected a JSON object");
  expect_error_contains([&] { read("l.jsonl", "{\"prompt\": \"abcdefgh\", \"chosen\": \"b\", \"rejected\": \"c\"}\n"); },
                        "l.jsonl' line 1: the prompt is 8 bytes");
  expect_error_contains([&] { read("e.jsonl", "\n"); }, "contains no pairs");
  expect_error_contains([&] { read_preference_jsonl(write_file("x", "") + "-missing", 8); },
                        "cannot open preference file");
}

}  // namespace
}  // namespace flywheel
