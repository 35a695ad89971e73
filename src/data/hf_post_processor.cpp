#include "data/hf_post_processor.h"

namespace flywheel::hf {
namespace {

// The ids of one entry of a template's "special_tokens" map.
std::vector<int32_t> special_ids(const JsonCursor& special_tokens, const std::string& name, const JsonCursor& reference,
                                 const std::function<bool(int64_t)>& known_id) {
  const auto entry = special_tokens.find(name);
  if (!entry) reference.fail("special token \"" + name + "\" is not in " + special_tokens.path());
  const JsonCursor ids = entry->at("ids");
  ids.expect_array();
  std::vector<int32_t> out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i].integer();
    if (!known_id(id)) ids[i].fail("id " + std::to_string(id) + " is neither in the vocabulary nor an added token");
    out.push_back(static_cast<int32_t>(id));
  }
  return out;
}

}  // namespace

void PostProcessor::append_template(const JsonCursor& spec, const std::function<bool(int64_t)>& known_id) {
  const JsonCursor single = spec.at("single");
  if (!single.json().is_array())
    single.fail("expected the template as a list of {\"SpecialToken\"} / {\"Sequence\"} items");
  const JsonCursor special_tokens = spec.at("special_tokens");
  special_tokens.expect_object();
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const JsonCursor item = single[i];
    if (const auto special = item.find("SpecialToken")) {
      const JsonCursor name = special->at("id");
      const auto ids = special_ids(special_tokens, name.string(), name, known_id);
      std::vector<int32_t>& side = seen_sequence ? after : before;
      side.insert(side.end(), ids.begin(), ids.end());
    } else if (const auto sequence = item.find("Sequence")) {
      const std::string which = sequence->at("id").string();
      if (which != "A")
        sequence->at("id").fail("the single template can only hold sequence A, found \"" + which + "\"");
      if (seen_sequence) item.fail("sequence A appears twice in the single template");
      seen_sequence = true;
    } else {
      item.fail("a template item must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  if (!seen_sequence) single.fail("the single template has no {\"Sequence\": {\"id\": \"A\"}}");
  // This template wraps whatever the processors before it produced.
  prefix_.insert(prefix_.begin(), before.begin(), before.end());
  suffix_.insert(suffix_.end(), after.begin(), after.end());
}

void PostProcessor::append(const JsonCursor& spec, const std::function<bool(int64_t)>& known_id) {
  const std::string type = spec.type();
  if (type == "TemplateProcessing") {
    append_template(spec, known_id);
  } else if (type == "ByteLevel") {
    return;  // it trims offsets; ids are unchanged
  } else if (type == "Sequence") {
    const JsonCursor members = spec.at("processors");
    members.expect_array();
    for (size_t i = 0; i < members.size(); ++i) append(members[i], known_id);
  } else {
    spec.at("type").fail("unsupported post_processor type \"" + type +
                         "\"; supported: TemplateProcessing, ByteLevel, Sequence (of these), or null");
  }
}

PostProcessor PostProcessor::from_json(const std::optional<JsonCursor>& spec,
                                       const std::function<bool(int64_t)>& known_id) {
  PostProcessor processor;
  if (spec) processor.append(*spec, known_id);
  return processor;
}

void PostProcessor::apply(std::vector<int32_t>& ids, bool add_special_tokens) const {
  if (!add_special_tokens) return;
  ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
}

std::optional<int32_t> PostProcessor::leading_id() const {
  if (prefix_.empty()) return std::nullopt;
  return prefix_.front();
}

}  // namespace flywheel::hf
