// HfTokenizer on small hand-written tokenizer.json files: each pipeline stage on its own, with
// expectations that follow from the HF library's rules (stated at each test). The real Qwen3 and
// Llama-3.2 files are tested string by string against transformers.js in test_tokenizer_oracle.cpp.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/hf_pre_tokenizer.h"
#include "data/hf_tokenizer.h"

namespace flywheel {
namespace {

using Json = nlohmann::json;
using Ids = std::vector<int32_t>;

// A BPE model over `tokens` (id = position) with `merges`, and nothing else: no normalizer, no
// pre-tokenizer (the whole text is one pre-token), no decoder.
// Merges in the ["a", "b"] form. (A braced list of string pairs would become a JSON object in
// nlohmann's initializer-list rules, losing order and repeated first elements.)
using Pairs = std::vector<std::pair<std::string, std::string>>;
Json pair_merges(const Pairs& merges) {
  Json array = Json::array();
  for (const auto& [left, right] : merges) array.push_back(Json::array({left, right}));
  return array;
}

Json tiny(const std::vector<std::string>& tokens, const Json& merges) {
  Json vocab = Json::object();
  for (size_t i = 0; i < tokens.size(); ++i) vocab[tokens[i]] = i;
  return Json{{"version", "1.0"},
              {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
              {"added_tokens", Json::array()}};
}

std::unique_ptr<HfTokenizer> load(const Json& json) { return HfTokenizer::from_json(json.dump(), "test.json"); }

Json added(int id, const std::string& content, Json flags = Json::object()) {
  Json token{{"id", id}, {"content", content}, {"special", true}, {"normalized", false}};
  for (const auto& [key, value] : flags.items()) token[key] = value;
  return token;
}

TEST(HfBpe, MergesLowestRankFirst) {
  // (b,c) ranks before (a,b): "abc" -> a|bc, then (a,bc) gives abc.
  const auto t = load(tiny({"a", "b", "c", "ab", "bc", "abc"}, pair_merges(Pairs{{"b", "c"}, {"a", "b"}, {"a", "bc"}})));
  EXPECT_EQ(t->encode("abc"), (Ids{5}));
  // With (a,b) first and no (ab,c) merge, "abc" stops at ab|c.
  const auto u = load(tiny({"a", "b", "c", "ab", "bc", "abc"}, pair_merges(Pairs{{"a", "b"}, {"b", "c"}, {"a", "bc"}})));
  EXPECT_EQ(u->encode("abc"), (Ids{3, 2}));
}

TEST(HfBpe, EqualRanksMergeLeftmostFirst) {
  const auto t = load(tiny({"a", "aa"}, pair_merges(Pairs{{"a", "a"}})));
  EXPECT_EQ(t->encode("aaa"), (Ids{1, 0}));
  EXPECT_EQ(t->encode("aaaa"), (Ids{1, 1}));
  EXPECT_EQ(t->encode("aaaaa"), (Ids{1, 1, 0}));
}

TEST(HfBpe, StringAndPairMergesAreTheSameMerges) {
  const std::vector<std::string> vocab = {"h", "e", "l", "o", "he", "ll", "llo", "hello"};
  const auto pairs = load(tiny(vocab, pair_merges(Pairs{{"h", "e"}, {"l", "l"}, {"ll", "o"}, {"he", "llo"}})));
  const auto strings = load(tiny(vocab, {"h e", "l l", "ll o", "he llo"}));
  EXPECT_EQ(pairs->encode("hello"), (Ids{7}));
  EXPECT_EQ(strings->encode("hello"), (Ids{7}));
  EXPECT_EQ(strings->encode("hellohe"), (Ids{7, 4}));
  // Only the pair form can hold a token with a space.
  const auto spaced = load(tiny({"a", " ", "a "}, pair_merges(Pairs{{"a", " "}})));
  EXPECT_EQ(spaced->encode("a a "), (Ids{2, 2}));
}

TEST(HfBpe, IgnoreMergesTakesAWholePreTokenFromTheVocabulary) {
  Json json = tiny({"a", "b", "c", "bc", "abc"}, pair_merges(Pairs{{"b", "c"}}));
  EXPECT_EQ(load(json)->encode("abc"), (Ids{0, 3}));  // merges alone cannot reach "abc"
  json["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(json)->encode("abc"), (Ids{4}));
  EXPECT_EQ(load(json)->encode("abcbc"), (Ids{0, 3, 3}));  // not in the vocabulary: merged as usual
}

TEST(HfBpe, ByteFallbackAndUnknownTokens) {
  Json json = tiny({"a", "<0xC3>", "<0xA9>", "<unk>"}, Json::array());
  EXPECT_EQ(load(json)->encode("a\xC3\xA9"
                               "a"),
            (Ids{0, 0}));  // no fallback, no unk: dropped
  json["model"]["byte_fallback"] = true;
  EXPECT_EQ(load(json)->encode("a\xC3\xA9"), (Ids{0, 1, 2}));  // é -> <0xC3> <0xA9>
  json["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(load(json)->encode("a\xE2\x82\xAC\xE2\x82\xAC"), (Ids{0, 3, 3}));  // € has no <0xE2>: unknown
  json["model"]["fuse_unk"] = true;
  EXPECT_EQ(load(json)->encode("a\xE2\x82\xAC\xE2\x82\xAC"
                               "a"),
            (Ids{0, 3, 0}));  // a run is one unknown
}

TEST(HfAddedTokens, LeftmostThenLongest) {
  Json json = tiny({"x", "y", "<", ">", "a", "b", "c", "d"}, Json::array());
  json["added_tokens"] = {added(10, "<a>"), added(11, "<a><b>"), added(12, "ab"), added(13, "bcd")};
  const auto t = load(json);
  EXPECT_EQ(t->encode("x<a><b>y"), (Ids{0, 11, 1}));
  EXPECT_EQ(t->encode("x<a>y"), (Ids{0, 10, 1}));
  EXPECT_EQ(t->encode("abcd"), (Ids{12, 6, 7}));  // "ab" starts first, so the longer "bcd" loses
}

TEST(HfAddedTokens, SingleWordLstripRstrip) {
  Json json = tiny({"x", " ", ",", "<", "m", ">"}, Json::array());
  json["added_tokens"] = {added(10, "<m>", {{"single_word", true}}), added(11, "[L]", {{"lstrip", true}}),
                          added(12, "[R]", {{"rstrip", true}})};
  const auto t = load(json);
  EXPECT_EQ(t->encode("x<m>"), (Ids{0, 3, 4, 5}));     // touches the word "x": not a match
  EXPECT_EQ(t->encode("x <m>,"), (Ids{0, 1, 10, 2}));  // punctuation is not a word character
  EXPECT_EQ(t->encode("x  [L]x"), (Ids{0, 11, 0}));    // the spaces before go with the token
  EXPECT_EQ(t->encode("x[R] \t x"), (Ids{0, 12, 0}));  // the whitespace after goes with it
  EXPECT_EQ(t->encode("x [R] "), (Ids{0, 1, 12}));
}

TEST(HfAddedTokens, NormalizedTokensMatchAfterNormalization) {
  Json json = tiny({"<", "a", "b", ">", "\xEF\xBC\x9C", "\xEF\xBC\x9E"}, Json::array());
  json["normalizer"] = {{"type", "NFKC"}};
  json["added_tokens"] = {added(10, "<ab>", {{"normalized", true}, {"special", false}})};
  EXPECT_EQ(load(json)->encode("\xEF\xBC\x9C"
                               "ab\xEF\xBC\x9E"),
            (Ids{10}));                           // fullwidth ＜ab＞ -> <ab>
  json["added_tokens"][0]["normalized"] = false;  // matched in the raw text only, so not found here
  EXPECT_EQ(load(json)->encode("\xEF\xBC\x9C"
                               "ab\xEF\xBC\x9E"),
            (Ids{0, 1, 2, 3}));
}

TEST(HfAddedTokens, NormalizationStopsAtAddedTokens) {
  Json json = tiny({"e", "\xCC\x81", "\xC3\xA9"}, Json::array());
  json["normalizer"] = {{"type", "NFC"}};
  json["added_tokens"] = {added(10, "<s>")};
  const auto t = load(json);
  EXPECT_EQ(t->encode("e\xCC\x81"), (Ids{2}));            // composed to é
  EXPECT_EQ(t->encode("e<s>\xCC\x81"), (Ids{0, 10, 1}));  // each stretch is normalized alone
}

std::vector<std::string> pieces(const Json& spec, const std::string& text) {
  const nlohmann::json document = spec;
  const auto pre = hf::PreTokenizer::from_json(hf::JsonCursor(document, "test.json"));
  std::vector<std::string> out;
  pre.run(text, [&](std::string_view piece) { out.emplace_back(piece); });
  return out;
}

// The examples of the HF library's SplitDelimiterBehavior documentation.
TEST(HfPreTokenizer, SplitBehaviors) {
  const auto split = [](const std::string& behavior) {
    return pieces({{"type", "Split"}, {"pattern", Json::object({{"String", "-"}})}, {"behavior", behavior}, {"invert", false}},
                  "the-final--countdown");
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split("Removed"), (V{"the", "final", "countdown"}));
  EXPECT_EQ(split("Isolated"), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithPrevious"), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(split("MergedWithNext"), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(split("Contiguous"), (V{"the", "-", "final", "--", "countdown"}));
  // invert: the pattern says what to keep; Removed then drops the rest.
  EXPECT_EQ(
      pieces(
          {{"type", "Split"}, {"pattern", {{"Regex", "\\w+|[^\\w\\s]+"}}}, {"behavior", "Removed"}, {"invert", true}},
          "How are you doing?"),
      (V{"How", "are", "you", "doing", "?"}));
}

TEST(HfPreTokenizer, ByteLevelPrefixSpaceAndGpt2Pattern) {
  using V = std::vector<std::string>;
  const Json gpt2{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
  EXPECT_EQ(pieces(gpt2, "Hello world's 42"), (V{"\xC4\xA0Hello", "\xC4\xA0world", "'s",
                                                 "\xC4\xA0"
                                                 "42"}));
  EXPECT_EQ(pieces(gpt2, " x"), (V{"\xC4\xA0x"}));  // already starts with a space: none added
  const Json bytes_only{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  EXPECT_EQ(pieces(bytes_only, "a b\n"), (V{"a\xC4\xA0"
                                            "b\xC4\x8A"}));
}

// Qwen's and Llama-3's Split patterns differ only in \p{N} vs \p{N}{1,3}.
TEST(HfPreTokenizer, QwenAndLlamaPatterns) {
  const std::string qwen =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
      "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  std::string llama = qwen;
  llama.replace(llama.find("\\p{N}|"), 6, "\\p{N}{1,3}|");
  const auto split = [](const std::string& pattern, const std::string& text) {
    return pieces({{"type", "Split"}, {"pattern", {{"Regex", pattern}}}, {"behavior", "Isolated"}, {"invert", false}},
                  text);
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(split(qwen, "12345"), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(split(llama, "12345"), (V{"123", "45"}));
  EXPECT_EQ(split(qwen, "I'M don't WE'VE"), (V{"I", "'M", " don", "'t", " WE", "'VE"}));
  // \s+(?!\S) leaves the last space of a run to the word after it.
  EXPECT_EQ(split(qwen, "a   b\n\n  c"), (V{"a", "  ", " b", "\n\n", " ", " c"}));
  EXPECT_EQ(split(qwen, "x = (y);\n"), (V{"x", " =", " (", "y", ");\n"}));
}

TEST(HfPostProcessor, TemplateWrapsTheTextOnlyWithAddSpecialTokens) {
  Json json = tiny({"a", "b"}, Json::array());
  json["added_tokens"] = {added(5, "<s>"), added(6, "</s>")};
  const auto special = [](const std::string& name, int id) {
    return Json{{"id", name}, {"ids", {id}}, {"tokens", {name}}};
  };
  json["post_processor"] = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
           {{"SpecialToken", {{"id", "</s>"}, {"type_id", 0}}}}}},
         {"pair", Json::array()},
         {"special_tokens", {{"<s>", special("<s>", 5)}, {"</s>", special("</s>", 6)}}}}}}};
  const auto t = load(json);
  EXPECT_EQ(t->encode("ab"), (Ids{0, 1}));
  EXPECT_EQ(t->encode("ab", {.add_special_tokens = true}), (Ids{5, 0, 1, 6}));
  EXPECT_EQ(t->encode("", {.add_special_tokens = true}), (Ids{5, 6}));
  EXPECT_EQ(t->bos_id(), 5);  // without a tokenizer_config.json, BOS is the template's first token
  EXPECT_EQ(t->eos_id(), std::nullopt);
}

TEST(HfDecoder, ByteLevelBytesBackToTextWithReplacement) {
  Json json = tiny({"\xC4\xA0hello", "\xC4\x8A", "\xC3\x83", "\xC2\xA9"}, Json::array());  // Ġhello Ċ Ã ©
  json["decoder"] = {{"type", "ByteLevel"}};
  json["added_tokens"] = {added(10, "<my token>", {{"special", false}}), added(11, "<eos>")};
  const auto t = load(json);
  EXPECT_EQ(t->decode(Ids{0, 1}), " hello\n");
  EXPECT_EQ(t->decode(Ids{2, 3}), "\xC3\xA9");                    // bytes C3 A9: é
  EXPECT_EQ(t->decode(Ids{2}), "\xEF\xBF\xBD");                   // a lone C3: U+FFFD
  EXPECT_EQ(t->decode(Ids{0, 10, 11}), " hello<my token><eos>");  // the space is not in the alphabet: raw
  EXPECT_EQ(t->decode(Ids{0, 11, 10}, {.skip_special_tokens = true}), " hello<my token>");
  EXPECT_EQ(t->decode(Ids{-1, 0, 999, 1}), " hello\n");  // ids the tokenizer lacks are skipped
}

TEST(HfDecoder, WithoutADecoderTokensAreJoinedBySpaces) {
  EXPECT_EQ(load(tiny({"a", "b"}, Json::array()))->decode(Ids{0, 1, 0}), "a b a");
}

TEST(HfTokenizer, ConfigNamesBosEosPad) {
  Json json = tiny({"a"}, Json::array());
  json["added_tokens"] = {added(1, "<bos>"), added(2, "<eos>"), added(3, "<pad>")};
  const Json config{
      {"bos_token", "<bos>"}, {"eos_token", {{"content", "<eos>"}, {"__type", "AddedToken"}}}, {"pad_token", nullptr}};
  const auto t = HfTokenizer::from_json(json.dump(), "test.json", config.dump(), "config.json");
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->pad_id(), std::nullopt);
  EXPECT_EQ(t->token_id("<pad>"), 3);
  EXPECT_EQ(t->token_id("a"), 0);
  EXPECT_EQ(t->token_id("zz"), std::nullopt);
  EXPECT_EQ(t->vocab_size(), 4);
  EXPECT_TRUE(t->is_special(2));
  EXPECT_FALSE(t->is_special(0));
}

TEST(HfTokenizer, AnAddedTokenMayRepeatItsVocabularyEntry) {
  Json json = tiny({"a", "<|endoftext|>"}, Json::array());  // GPT-2 lists <|endoftext|> in both
  json["added_tokens"] = {added(1, "<|endoftext|>")};
  EXPECT_EQ(load(json)->encode("a<|endoftext|>a"), (Ids{0, 1, 0}));
}

TEST(ByteTokenizerAdapter, IsTheByteTokenizerBehindTheInterface) {
  const ByteTokenizerAdapter bytes;
  const Tokenizer& t = bytes;
  EXPECT_EQ(t.encode("hi"), (Ids{'h', 'i'}));
  EXPECT_EQ(t.encode("hi", {.add_special_tokens = true}), (Ids{ByteTokenizer::kBos, 'h', 'i'}));
  EXPECT_EQ(t.decode(Ids{ByteTokenizer::kBos, 'o', 'k', ByteTokenizer::kEos, 'x'}), "ok");
  EXPECT_EQ(t.vocab_size(), ByteTokenizer::kVocabSize);
  EXPECT_EQ(t.eos_id(), ByteTokenizer::kEos);
  EXPECT_EQ(t.token_id("A"), 65);
  EXPECT_EQ(t.token_id("AB"), std::nullopt);
  EXPECT_EQ(t.name(), "bytes");
}

}  // namespace
}  // namespace flywheel
