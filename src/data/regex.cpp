#include "data/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/error.h"
#include "core/utf8.h"

namespace flywheel {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread match state, shared by every pattern: PCRE2 match data is independent of the pattern,
// and the JIT stack may grow to 64 MiB so that long runs (a megabyte of spaces against \s+(?!\S))
// do not hit PCRE2's default 32 KiB limit.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(16, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
  MatchScratch() { pcre2_jit_stack_assign(context, nullptr, jit_stack); }
  ~MatchScratch() {
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch instance;
  return instance;
}

}  // namespace

struct Regex::Impl {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Impl() { pcre2_code_free(code); }
};

Regex::Regex(std::string_view pattern, bool literal, const std::string& where)
    : impl_(std::make_unique<Impl>()), where_(where) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // PCRE2_LITERAL admits only a few other options, not PCRE2_UCP (pcre2_compile(3)); a literal has no
  // character classes for UCP to widen anyway.
  const uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                              &error, &offset, nullptr);
  FW_INPUT_CHECK(impl_->code != nullptr, where, ": the pattern does not compile (PCRE2 with UTF and Unicode ",
                 "properties): ", pcre2_message(error), " at offset ", offset);
  impl_->jit = pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() = default;
Regex::Regex(Regex&&) noexcept = default;
Regex& Regex::operator=(Regex&&) noexcept = default;

size_t Regex::char_length(std::string_view text, size_t at) {
  return utf8::sequence_length(static_cast<unsigned char>(text[at]));
}

bool Regex::next_match(std::string_view text, size_t from, size_t* begin, size_t* end) const {
  MatchScratch& s = scratch();
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  const int rc = impl_->jit ? pcre2_jit_match(impl_->code, subject, text.size(), from, 0, s.data, s.context)
                            : pcre2_match(impl_->code, subject, text.size(), from, PCRE2_NO_UTF_CHECK, s.data,
                                          s.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  // rc == 0 only says the ovector has no room for every group; the whole match is still in [0, 1].
  FW_CHECK(rc >= 0, where_, ": matching failed (PCRE2: ", pcre2_message(rc), ") on a text of ", text.size(),
           " bytes");
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
  *begin = ovector[0];
  *end = ovector[1];
  return true;
}

bool Regex::matches_whole(std::string_view text) const {
  MatchScratch& s = scratch();
  const int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_NO_UTF_CHECK, s.data, s.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  FW_CHECK(rc >= 0, where_, ": matching failed (PCRE2: ", pcre2_message(rc), ")");
  return true;
}

namespace {

bool matches_code_point(const Regex& regex, char32_t code_point) {
  std::string text;
  utf8::append(text, code_point);
  return regex.matches_whole(text);
}

}  // namespace

bool is_white_space(char32_t code_point) {
  if (code_point < 0x80) return code_point == ' ' || (code_point >= '\t' && code_point <= '\r');
  static const Regex white_space("\\p{White_Space}", false, "is_white_space");
  return matches_code_point(white_space, code_point);
}

bool is_word_character(char32_t code_point) {
  if (code_point < 0x80) {
    return (code_point >= '0' && code_point <= '9') || (code_point >= 'a' && code_point <= 'z') ||
           (code_point >= 'A' && code_point <= 'Z') || code_point == '_';
  }
  static const Regex word("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]", false, "is_word_character");
  return matches_code_point(word, code_point);
}

}  // namespace flywheel
