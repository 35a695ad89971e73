#include "data/json_line.h"

#include <optional>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/text.h"

namespace flywheel {
namespace {

using nlohmann::json;

// nlohmann's text, "[json.exception.parse_error.101] parse error at line 1, column 7: syntax error
// ...", without the exception's id and the position inside the one-line string (the caller names
// the file's line; the column is e.byte).
std::string parse_problem(const json::exception& e) {
  std::string text = e.what();
  const size_t id_end = text.find("] ");
  if (text.rfind("[json.exception.", 0) == 0 && id_end != std::string::npos) text = text.substr(id_end + 2);
  const size_t position_end = text.find(": ");
  if (text.rfind("parse error at line", 0) == 0 && position_end != std::string::npos)
    text = text.substr(position_end + 2);
  return text;
}

}  // namespace

json parse_object_line(const std::string& line, const std::string& where, const std::string& expected) {
  if (const std::optional<size_t> at = first_non_text_byte(line))
    FW_INPUT_THROW(where, "not text (byte ", *at + 1, " of the line is a control character or not UTF-8); expected ",
                   expected);
  // Keys seen in each object being parsed, innermost last.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  const json::parser_callback_t track_keys = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == json::parse_event_t::object_end) open_objects.pop_back();
    if (event == json::parse_event_t::key && !open_objects.back().insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  json value;
  try {
    value = json::parse(line, track_keys);
  } catch (const json::parse_error& e) {
    FW_INPUT_THROW(where, "not valid JSON at column ", e.byte, ": ", parse_problem(e));
  } catch (const json::exception& e) {  // out_of_range for 1e999
    FW_INPUT_THROW(where, "not valid JSON: ", parse_problem(e));
  }
  FW_INPUT_CHECK(duplicate.empty(), where, "key \"", duplicate, "\" is given twice in one object; give each key once");
  FW_INPUT_CHECK(value.is_object(), where, "expected ", expected, ", got ", value.type_name());
  return value;
}

}  // namespace flywheel
