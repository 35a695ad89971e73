#include "launch/ini_text.h"

#include <sstream>

#include "core/error.h"

namespace flywheel {
namespace {

std::string trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return {};
  return s.substr(begin, s.find_last_not_of(" \t\r") - begin + 1);
}

// "[mesh]" -> "mesh"; "" when the line is not a section header.
std::string section_of(const std::string& line) {
  const std::string t = trim(line);
  return t.size() >= 2 && t.front() == '[' && t.back() == ']' ? trim(t.substr(1, t.size() - 2)) : std::string();
}

// The key of "key = value" (comments and blank lines: "").
std::string key_of(const std::string& line) {
  const std::string t = trim(line);
  if (t.empty() || t[0] == '#' || t[0] == ';') return {};
  const size_t eq = t.find('=');
  return eq == std::string::npos ? std::string() : trim(t.substr(0, eq));
}

}  // namespace

std::string set_ini_value(const std::string& text, const std::string& section, const std::string& key,
                          const std::string& value) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  const std::string assignment = key + " = " + value;
  std::string current;
  int section_end = -1;  // index after the last non-blank line of `section`
  for (size_t i = 0; i < lines.size(); ++i) {
    if (const std::string s = section_of(lines[i]); !s.empty()) {
      current = s;
      if (current == section) section_end = static_cast<int>(i) + 1;
      continue;
    }
    if (current != section) continue;
    if (key_of(lines[i]) == key) {
      lines[i] = assignment;
      section_end = -2;  // replaced
      break;
    }
    if (!trim(lines[i]).empty()) section_end = static_cast<int>(i) + 1;
  }
  if (section_end >= 0) {
    lines.insert(lines.begin() + section_end, assignment);
  } else if (section_end == -1) {  // no such section
    if (!lines.empty() && !trim(lines.back()).empty()) lines.push_back("");
    lines.push_back("[" + section + "]");
    lines.push_back(assignment);
  }
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

std::optional<IniOverride> parse_override(const std::string& token) {
  const size_t dot = token.find('.'), eq = token.find('=');  // the first of each: values may hold both
  const bool form = token.rfind("--", 0) == 0 && eq != std::string::npos && dot < eq;
  if (!form || dot == 2 || dot + 1 == eq) return std::nullopt;  // an empty section or key
  return IniOverride{token.substr(2, dot - 2), token.substr(dot + 1, eq - dot - 1), token.substr(eq + 1)};
}

std::string apply_overrides(std::string text, const std::vector<std::string>& overrides) {
  for (const std::string& token : overrides) {
    const std::optional<IniOverride> o = parse_override(token);
    if (!o)
      throw Error(detail::concat("'", token.substr(token.rfind("--", 0) == 0 ? 2 : 0),
                                 "' is not of the form section.key=value (e.g. model.n_layers=2)"));
    text = set_ini_value(text, o->section, o->key, o->value);
  }
  return text;
}

}  // namespace flywheel
