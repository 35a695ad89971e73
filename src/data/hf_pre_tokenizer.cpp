#include "data/hf_pre_tokenizer.h"

#include "data/byte_level.h"

namespace flywheel::hf {
namespace {

// GPT-2's pre-tokenizer pattern, which the HF ByteLevel pre-tokenizer applies when use_regex is true.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

SplitBehavior behavior_of(const JsonCursor& value) {
  const std::string name = value.string();
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  value.fail("unknown split behavior \"" + name +
             "\"; allowed: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

struct Span {
  size_t begin, end;
  bool match;
};

// The pieces a behavior makes of spans that cover the text (matches and the gaps between them),
// following the HF library's NormalizedString::split.
std::vector<Span> apply_behavior(const std::vector<Span>& spans, SplitBehavior behavior) {
  std::vector<Span> pieces;
  pieces.reserve(spans.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      return spans;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans)
        if (!s.match) pieces.push_back(s);
      return pieces;
    case SplitBehavior::kContiguous:
      for (size_t i = 0; i < spans.size(); ++i) {
        if (i > 0 && spans[i].match == spans[i - 1].match) pieces.back().end = spans[i].end;
        else pieces.push_back(spans[i]);
      }
      return pieces;
    case SplitBehavior::kMergedWithPrevious:
      for (size_t i = 0; i < spans.size(); ++i) {
        const bool joins = spans[i].match && i > 0 && !spans[i - 1].match;
        if (joins) pieces.back().end = spans[i].end;
        else pieces.push_back(spans[i]);
      }
      return pieces;
    case SplitBehavior::kMergedWithNext:
      for (size_t i = spans.size(); i-- > 0;) {
        const bool joins = spans[i].match && i + 1 < spans.size() && !spans[i + 1].match;
        if (joins) pieces.back().begin = spans[i].begin;
        else pieces.push_back(spans[i]);
      }
      return {pieces.rbegin(), pieces.rend()};
  }
  return pieces;
}

}  // namespace

PreTokenizer::Step PreTokenizer::split_step(const JsonCursor& spec) {
  const JsonCursor pattern = spec.at("pattern");
  pattern.expect_object();
  const auto regex = pattern.find("Regex");
  const auto literal = pattern.find("String");
  if (!regex && !literal) pattern.fail("a Split pattern must be {\"Regex\": ...} or {\"String\": ...}");
  const JsonCursor& source = regex ? *regex : *literal;
  Step step{Step::Kind::kSplit, Regex(source.string(), !regex, source.file() + ": at " + source.path())};
  step.behavior = behavior_of(spec.at("behavior"));
  step.invert = spec.boolean_or("invert", false);
  return step;
}

PreTokenizer::Step PreTokenizer::byte_level_step(const JsonCursor& spec) {
  // Defaults are those of the HF library's ByteLevel::default().
  Step step{Step::Kind::kByteLevel, std::nullopt};
  step.add_prefix_space = spec.boolean_or("add_prefix_space", true);
  if (spec.boolean_or("use_regex", true)) step.regex.emplace(kGpt2Pattern, false, "the GPT-2 pattern");
  return step;
}

void PreTokenizer::append_steps(const JsonCursor& spec, std::vector<Step>& steps) {
  const std::string type = spec.type();
  if (type == "Split") {
    steps.push_back(split_step(spec));
  } else if (type == "ByteLevel") {
    steps.push_back(byte_level_step(spec));
  } else if (type == "Sequence") {
    const JsonCursor members = spec.at("pretokenizers");
    members.expect_array();
    for (size_t i = 0; i < members.size(); ++i) append_steps(members[i], steps);
  } else {
    spec.at("type").fail("unsupported pre_tokenizer type \"" + type +
                         "\"; supported: Split, ByteLevel, Sequence (of these), or null");
  }
}

PreTokenizer PreTokenizer::from_json(const std::optional<JsonCursor>& spec) {
  PreTokenizer pre_tokenizer;
  if (spec) append_steps(*spec, pre_tokenizer.steps_);
  return pre_tokenizer;
}

void PreTokenizer::run_from(size_t step, std::string_view text, const Emit& emit) const {
  if (text.empty()) return;
  if (step == steps_.size()) return emit(text);
  const Step& current = steps_[step];
  if (current.kind == Step::Kind::kSplit) split(current, text, step + 1, emit);
  else byte_level(current, text, step + 1, emit);
}

void PreTokenizer::split(const Step& step, std::string_view text, size_t next, const Emit& emit) const {
  std::vector<Span> spans;
  size_t previous = 0;
  step.regex->for_each_match(text, [&](size_t begin, size_t end) {
    if (previous < begin) spans.push_back(Span{previous, begin, false});
    spans.push_back(Span{begin, end, true});
    previous = end;
  });
  if (previous < text.size()) spans.push_back(Span{previous, text.size(), false});
  if (step.invert)
    for (Span& s : spans) s.match = !s.match;
  for (const Span& piece : apply_behavior(spans, step.behavior))
    run_from(next, text.substr(piece.begin, piece.end - piece.begin), emit);
}

void PreTokenizer::byte_level(const Step& step, std::string_view text, size_t next, const Emit& emit) const {
  std::string prefixed;
  if (step.add_prefix_space && text.front() != ' ') {
    prefixed = " ";
    prefixed += text;
    text = prefixed;
  }
  const ByteLevelAlphabet& alphabet = ByteLevelAlphabet::get();
  std::string mapped;
  const auto map_and_continue = [&](std::string_view piece) {
    mapped.clear();
    alphabet.append_symbols(piece, mapped);
    run_from(next, mapped, emit);
  };
  if (!step.regex) return map_and_continue(text);
  size_t previous = 0;
  step.regex->for_each_match(text, [&](size_t begin, size_t end) {
    if (previous < begin) map_and_continue(text.substr(previous, begin - previous));
    map_and_continue(text.substr(begin, end - begin));
    previous = end;
  });
  if (previous < text.size()) map_and_continue(text.substr(previous));
}

}  // namespace flywheel::hf
