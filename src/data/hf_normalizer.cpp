#include "data/hf_normalizer.h"

#include <utf8proc.h>

#include <cstdlib>

#include "core/error.h"

namespace flywheel::hf {
namespace {

bool all_ascii(std::string_view text) {
  for (char c : text)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

utf8proc_option_t options_of(NormalizationForm form) {
  switch (form) {
    case NormalizationForm::kNfc: return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    case NormalizationForm::kNfd: return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE);
    case NormalizationForm::kNfkc:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
    case NormalizationForm::kNfkd:
      return static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT);
  }
  return UTF8PROC_STABLE;
}

}  // namespace

std::string normalize_unicode(std::string_view text, NormalizationForm form) {
  // ASCII is invariant under all four forms, and it is most of what a tokenizer sees.
  if (all_ascii(text)) return std::string(text);
  utf8proc_uint8_t* result = nullptr;
  // An explicit length (no UTF8PROC_NULLTERM): NUL characters are text like any other.
  const utf8proc_ssize_t length = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                               static_cast<utf8proc_ssize_t>(text.size()), &result,
                                               options_of(form));
  FW_CHECK(length >= 0, "Unicode normalization failed (utf8proc: ", utf8proc_errmsg(length), ") on ",
           text.size(), " bytes");
  std::string normalized(reinterpret_cast<const char*>(result), static_cast<size_t>(length));
  std::free(result);
  return normalized;
}

void Normalizer::append_forms(const JsonCursor& spec, std::vector<NormalizationForm>& forms) {
  const std::string type = spec.type();
  if (type == "NFC") {
    forms.push_back(NormalizationForm::kNfc);
  } else if (type == "NFD") {
    forms.push_back(NormalizationForm::kNfd);
  } else if (type == "NFKC") {
    forms.push_back(NormalizationForm::kNfkc);
  } else if (type == "NFKD") {
    forms.push_back(NormalizationForm::kNfkd);
  } else if (type == "Sequence") {
    const JsonCursor members = spec.at("normalizers");
    members.expect_array();
    for (size_t i = 0; i < members.size(); ++i) append_forms(members[i], forms);
  } else {
    spec.at("type").fail("unsupported normalizer type \"" + type +
                         "\"; supported: NFC, NFD, NFKC, NFKD, Sequence (of these), or null");
  }
}

Normalizer Normalizer::from_json(const std::optional<JsonCursor>& spec) {
  Normalizer normalizer;
  if (spec) append_forms(*spec, normalizer.forms_);
  return normalizer;
}

std::string Normalizer::apply(std::string_view text) const {
  std::string out(text);
  for (NormalizationForm form : forms_) out = normalize_unicode(out, form);
  return out;
}

}  // namespace flywheel::hf
