// Rollout files for external scorers: see rollout_file.h for the format.
#include "rl/rollout_file.h"

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "data/json_line.h"

namespace flywheel {
namespace {

using nlohmann::json;

bool is_blank(const std::string& line) {
  for (char c : line)
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

// Field access with messages naming "<file> line N: field \"key\" ...".
class LineReader {
 public:
  LineReader(const std::string& path, int64_t line) : path_(path), line_(line) {}

  std::string where() const { return detail::concat("rollout file '", path_, "' line ", line_, ": "); }

  const json& field(const json& object, const char* key) const {
    const auto it = object.find(key);
    FW_INPUT_CHECK(it != object.end(), where(), "missing field \"", key, "\"");
    return *it;
  }
  std::string string(const json& object, const char* key) const {
    const json& v = field(object, key);
    FW_INPUT_CHECK(v.is_string(), where(), "field \"", key, "\" must be a string, got ", v.type_name());
    return v.get<std::string>();
  }
  int64_t integer(const json& object, const char* key) const {
    const json& v = field(object, key);
    FW_INPUT_CHECK(v.is_number_integer(), where(), "field \"", key, "\" must be an integer, got ", v.dump());
    return v.get<int64_t>();
  }
  double number(const json& object, const char* key) const {
    const json& v = field(object, key);
    FW_INPUT_CHECK(v.is_number(), where(), "field \"", key, "\" must be a number, got ", v.type_name());
    const double x = v.get<double>();
    FW_INPUT_CHECK(std::isfinite(x), where(), "field \"", key, "\" = ", x, " must be finite");
    return x;
  }
  std::vector<int32_t> tokens(const json& object, const char* key) const {
    const json& v = field(object, key);
    FW_INPUT_CHECK(v.is_array(), where(), "field \"", key, "\" must be an array of token ids, got ", v.type_name());
    std::vector<int32_t> ids;
    for (const json& x : v) {
      FW_INPUT_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() <= INT32_MAX, where(),
                     "field \"", key, "\" holds ", x.dump(), "; token ids are integers in [0, 2^31)");
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
    }
    return ids;
  }
  std::vector<float> floats(const json& object, const char* key) const {
    const json& v = field(object, key);
    FW_INPUT_CHECK(v.is_array(), where(), "field \"", key, "\" must be an array of numbers, got ", v.type_name());
    std::vector<float> values;
    for (const json& x : v) {
      FW_INPUT_CHECK(x.is_number() && std::isfinite(x.get<double>()), where(), "field \"", key, "\" holds ", x.dump(),
                     "; expected finite numbers");
      values.push_back(static_cast<float>(x.get<double>()));
    }
    return values;
  }

 private:
  const std::string& path_;
  int64_t line_;
};

Rollout parse_rollout(const std::string& text, const LineReader& in, bool require_reward) {
  const json object = parse_object_line(text, in.where(), "a JSON object (a rollout)");
  Rollout r;
  r.id = in.string(object, "id");
  r.step = in.integer(object, "step");
  r.group = in.integer(object, "group");
  r.prompt = in.string(object, "prompt");
  r.completion = in.string(object, "completion");
  r.prompt_tokens = in.tokens(object, "prompt_tokens");
  r.completion_tokens = in.tokens(object, "completion_tokens");
  r.logprobs = in.floats(object, "logprobs");
  FW_INPUT_CHECK(r.logprobs.size() == r.completion_tokens.size(), in.where(), "\"logprobs\" has ", r.logprobs.size(),
                 " entries but \"completion_tokens\" has ", r.completion_tokens.size(), "; expected one per token");
  if (require_reward || object.contains("reward")) r.reward = in.number(object, "reward");
  return r;
}

// Every non-blank line of the file with its 1-based line number.
std::vector<std::pair<int64_t, Rollout>> parse_file(const std::string& path, bool require_reward) {
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in.is_open(), "cannot open rollout file '", path, "': ", std::strerror(errno));
  std::vector<std::pair<int64_t, Rollout>> rollouts;
  std::string text;
  int64_t line = 0;
  while (std::getline(in, text)) {
    ++line;
    if (is_blank(text)) continue;
    rollouts.emplace_back(line, parse_rollout(text, LineReader(path, line), require_reward));
  }
  FW_INPUT_CHECK(!in.bad(), "error reading rollout file '", path, "' after line ", line);
  return rollouts;
}

json to_json(const Rollout& r) {
  std::vector<double> logprobs(r.logprobs.begin(), r.logprobs.end());  // exact: float -> double -> float
  json out{{"id", r.id},
           {"step", r.step},
           {"group", r.group},
           {"prompt", r.prompt},
           {"completion", r.completion},
           {"prompt_tokens", r.prompt_tokens},
           {"completion_tokens", r.completion_tokens},
           {"logprobs", logprobs}};
  if (r.messages.empty()) return out;
  json messages = json::array();
  for (const ChatMessage& m : r.messages) messages.push_back({{"role", role_name(m.role)}, {"content", m.content}});
  out["messages"] = std::move(messages);
  out["fields"] = r.fields;
  return out;
}

}  // namespace

void write_rollouts(const std::string& path, const std::vector<Rollout>& rollouts) {
  std::set<std::string> ids;
  for (size_t i = 0; i < rollouts.size(); ++i) {
    const Rollout& r = rollouts[i];
    FW_CHECK(!r.id.empty(), "rollout ", i, " has an empty id; ids must be unique non-empty strings");
    FW_CHECK(ids.insert(r.id).second, "rollout ", i, " repeats id '", r.id, "'; ids must be unique");
    FW_CHECK(r.logprobs.size() == r.completion_tokens.size(), "rollout '", r.id, "' has ", r.logprobs.size(),
             " logprobs for ", r.completion_tokens.size(), " completion tokens; expected one per token");
    for (float lp : r.logprobs)
      FW_CHECK(std::isfinite(lp), "rollout '", r.id, "' has a non-finite logprob ", lp);
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    FW_CHECK(out.is_open(), "cannot write rollout file '", tmp, "': ", std::strerror(errno));
    // Model text may not be valid UTF-8; the token arrays keep the exact bytes.
    for (const Rollout& r : rollouts) out << to_json(r).dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
    out.flush();
    FW_CHECK(out.good(), "error writing rollout file '", tmp, "'");
  }
  std::error_code error;
  std::filesystem::rename(tmp, path, error);
  FW_CHECK(!error, "cannot rename '", tmp, "' to '", path, "': ", error.message());
}

std::vector<Rollout> read_rollouts(const std::string& path, bool require_reward) {
  std::vector<Rollout> rollouts;
  for (auto& [line, rollout] : parse_file(path, require_reward)) rollouts.push_back(std::move(rollout));
  return rollouts;
}

std::vector<double> read_scored_rollouts(const std::string& path, const std::vector<Rollout>& written) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < written.size(); ++i) index.emplace(written[i].id, i);
  std::vector<double> rewards(written.size(), 0.0);
  std::vector<int64_t> seen_at(written.size(), 0);
  for (const auto& [line, scored] : parse_file(path, true)) {
    const std::string where = detail::concat("scored rollout file '", path, "' line ", line, ": ");
    const auto it = index.find(scored.id);
    FW_INPUT_CHECK(it != index.end(), where, "id '", scored.id, "' was not among the ", written.size(),
                   " rollouts written");
    const size_t i = it->second;
    FW_INPUT_CHECK(seen_at[i] == 0, where, "id '", scored.id, "' repeats line ", seen_at[i],
                   "; score each rollout once");
    const Rollout& w = written[i];
    FW_INPUT_CHECK(scored.step == w.step && scored.group == w.group, where, "id '", scored.id, "' has step ",
                   scored.step, " group ", scored.group, "; it was written with step ", w.step, " group ", w.group);
    FW_INPUT_CHECK(scored.prompt_tokens == w.prompt_tokens && scored.completion_tokens == w.completion_tokens, where,
                   "id '", scored.id, "' has prompt_tokens or completion_tokens that differ from what was written");
    seen_at[i] = line;
    rewards[i] = scored.reward;
  }
  for (size_t i = 0; i < written.size(); ++i)
    FW_INPUT_CHECK(seen_at[i] != 0, "scored rollout file '", path, "' has no line for id '", written[i].id, "' (",
                   written.size(), " rollouts were written)");
  return rewards;
}

}  // namespace flywheel
