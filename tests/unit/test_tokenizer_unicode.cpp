// The Unicode layer under the HF tokenizers: UTF-8 repair, normalization forms, the byte-level
// alphabet, and the regex character classes (data/utf8.h, hf_normalizer.h, byte_level.h, regex.h).
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "data/byte_level.h"
#include "data/hf_normalizer.h"
#include "data/regex.h"
#include "core/utf8.h"

namespace flywheel {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, ValidTextIsLeftAlone) {
  for (const std::string& text : std::vector<std::string>{"", "plain ascii", "caf\xC3\xA9", "\xF0\x9F\x98\x80", "\xE4\xB8\xAD\xE6\x96\x87",
                                 std::string("a\0b", 3), "\xF4\x8F\xBF\xBF", "\xEF\xBF\xBE"}) {
    EXPECT_TRUE(utf8::is_valid(text)) << text;
    EXPECT_EQ(utf8::repair(text), text);
  }
}

// One U+FFFD per maximal ill-formed subpart (Unicode §3.9, Table 3-8's examples), the policy of
// WHATWG's TextDecoder and Rust's from_utf8_lossy: a truncated sequence is one replacement; a byte
// that can never start or continue a sequence is one each.
TEST(Utf8, RepairReplacesEachMaximalSubpart) {
  EXPECT_EQ(utf8::repair("\xF0\x9F\x98"), kFffd);  // truncated 4-byte sequence
  EXPECT_EQ(utf8::repair("\xF0\x9F\x98 x"), kFffd + " x");
  EXPECT_EQ(utf8::repair("\xE2\x82"), kFffd);  // truncated at the end
  EXPECT_EQ(utf8::repair("a\x80"
                         "b"),
            "a" + kFffd + "b");                                                // stray continuation byte
  EXPECT_EQ(utf8::repair("\xC0\xAF"), kFffd + kFffd);                          // C0 never starts a sequence
  EXPECT_EQ(utf8::repair("\xE0\x80\xAF"), kFffd + kFffd + kFffd);              // overlong: E0 needs A0..BF
  EXPECT_EQ(utf8::repair("\xED\xA0\x80"), kFffd + kFffd + kFffd);              // a surrogate: ED needs 80..9F
  EXPECT_EQ(utf8::repair("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);  // above U+10FFFF
  EXPECT_EQ(utf8::repair("\xFF\xFE"), kFffd + kFffd);
  EXPECT_EQ(utf8::repair("\xC3\x28"), kFffd + "(");                // lead byte, then not a continuation
  EXPECT_EQ(utf8::repair("\xE1\x80\xE2\xF0\x91\x92\xF1\xBF\x41"),  // Table 3-8 of the standard
            kFffd + kFffd + kFffd + kFffd + "A");
  for (const std::string bad : {"\xFF", "\xC3", "\xED\xA0\x80", "a\x80"}) EXPECT_FALSE(utf8::is_valid(bad));
}

TEST(Utf8, DecodesAndEncodesCodePoints) {
  const std::string text = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";
  size_t length = 0;
  EXPECT_EQ(utf8::decode_at(text, 1, &length), U'\u00E9');
  EXPECT_EQ(length, 2u);
  EXPECT_EQ(utf8::decode_at(text, 3, &length), U'\u4E2D');
  EXPECT_EQ(utf8::decode_before(text, text.size(), &length), U'\U0001F600');
  EXPECT_EQ(length, 4u);
  std::string out;
  for (char32_t c : {U'a', U'\u00E9', U'\u4E2D', U'\U0001F600'}) utf8::append(out, c);
  EXPECT_EQ(out, text);
}

TEST(UnicodeNormalization, NfcComposesWhatQwenSees) {
  using hf::NormalizationForm;
  const auto nfc = [](const std::string& s) { return hf::normalize_unicode(s, NormalizationForm::kNfc); };
  EXPECT_EQ(nfc("e\xCC\x81"), "\xC3\xA9");                                 // e + U+0301 -> é
  EXPECT_EQ(nfc("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"), "\xEA\xB0\x81");  // jamo ᄀ ᅡ ᆨ -> 각
  EXPECT_EQ(nfc("\xE2\x84\xAB"), "\xC3\x85");                              // Angstrom sign -> Å
  EXPECT_EQ(nfc("\xEF\xA4\x80"), "\xE8\xB1\x88");                          // CJK compatibility U+F900 -> U+8C48
  EXPECT_EQ(nfc("a\xCC\xA3\xCC\x82"), "\xE1\xBA\xAD");                     // a + dot below + circumflex -> ậ
  EXPECT_EQ(nfc("a\xCC\x82\xCC\xA3"), "\xE1\xBA\xAD");                     // the marks in either order
  EXPECT_EQ(nfc("\xE0\xA5\x98"), "\xE0\xA4\x95\xE0\xA4\xBC");              // U+0958 is excluded from composition
  EXPECT_EQ(nfc(std::string("a\0b", 3)), std::string("a\0b", 3));          // NUL is text
  EXPECT_EQ(hf::normalize_unicode("\xEF\xBC\xA1\xC2\xB2", NormalizationForm::kNfkc),
            "A2");  // fullwidth A, superscript 2
  EXPECT_EQ(hf::normalize_unicode("\xC3\xA9", NormalizationForm::kNfd), "e\xCC\x81");
}

TEST(ByteLevelAlphabet, FollowsGpt2BytesToUnicode) {
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  EXPECT_EQ(alphabet.symbol(' '), "\xC4\xA0");   // Ġ U+0120
  EXPECT_EQ(alphabet.symbol('\n'), "\xC4\x8A");  // Ċ U+010A
  EXPECT_EQ(alphabet.symbol('A'), "A");
  EXPECT_EQ(alphabet.symbol(0xE9), "\xC3\xA9");  // é stands for itself
  EXPECT_EQ(alphabet.symbol(0xAD), "\xC5\x83");  // the soft hyphen is the last shifted byte: U+0143
  std::set<std::string_view> distinct;
  for (int b = 0; b < 256; ++b) {
    distinct.insert(alphabet.symbol(static_cast<uint8_t>(b)));
    EXPECT_EQ(alphabet.byte_of(utf8::decode_at(alphabet.symbol(static_cast<uint8_t>(b)), 0)), b);
  }
  EXPECT_EQ(distinct.size(), 256u);
  EXPECT_EQ(alphabet.byte_of(U' '), -1);  // the space itself is not in the alphabet
}

TEST(RegexClasses, MatchRustRegexClasses) {
  for (char32_t c : {U' ', U'\t', U'\n', U'\u0085', U'\u00A0', U'\u2003', U'\u3000', U'\u2028'})
    EXPECT_TRUE(is_white_space(c)) << static_cast<uint32_t>(c);
  for (char32_t c : {U'a', U'\uFEFF', U'\u200B', U'_'}) EXPECT_FALSE(is_white_space(c)) << static_cast<uint32_t>(c);
  for (char32_t c : {U'a', U'Z', U'7', U'_', U'\u00E9', U'\u4E2D', U'\u0301', U'\u200D', U'\u0663'})
    EXPECT_TRUE(is_word_character(c)) << static_cast<uint32_t>(c);
  for (char32_t c : {U' ', U'-', U',', U'<', U'\U0001F600'})
    EXPECT_FALSE(is_word_character(c)) << static_cast<uint32_t>(c);
}

TEST(Regex, FindsMatchesLeftToRightAndSkipsEmptyOnes) {
  const Regex digits("\\p{N}+|x*", false, "test");
  std::vector<std::string> found;
  const std::string text =
      "ab12c\xD9\xA3"
      "4";
  digits.for_each_match(text, [&](size_t b, size_t e) { found.push_back(text.substr(b, e - b)); });
  EXPECT_EQ(found, (std::vector<std::string>{"12",
                                             "\xD9\xA3"
                                             "4"}));  // U+0663 ARABIC-INDIC THREE is \p{N}
}

TEST(Regex, LongRunsDoNotExhaustTheMatcher) {
  const Regex pattern("\\s+(?!\\S)|\\s+|\\p{L}+", false, "test");
  const std::string spaces(2'000'000, ' ');
  size_t matched = 0;
  pattern.for_each_match(spaces + "x", [&](size_t b, size_t e) { matched += e - b; });
  EXPECT_EQ(matched, spaces.size() + 1);
}

}  // namespace
}  // namespace flywheel
