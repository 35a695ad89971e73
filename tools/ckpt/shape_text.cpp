#include "shape_text.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace flywheel::ckpt_tool {
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

// Deletes the temporary shape file however parse_shape_text leaves.
struct TempFile {
  std::string path;
  ~TempFile() {
    if (!path.empty()) std::remove(path.c_str());
  }
};

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

std::string apply_overrides(std::string text, const std::vector<std::string>& overrides) {
  for (const std::string& token : overrides) {
    const size_t dot = token.find('.'), eq = token.find('=');
    FW_CHECK(token.rfind("--", 0) == 0 && dot != std::string::npos && eq != std::string::npos && dot < eq,
             "override '", token, "' is not of the form --section.key=value");
    text = set_ini_value(text, token.substr(2, dot - 2), token.substr(dot + 1, eq - dot - 1), token.substr(eq + 1));
  }
  return text;
}

Shape parse_shape_text(const std::string& text, const std::string& origin) {
  namespace fs = std::filesystem;
  std::string pattern = (fs::temp_directory_path() / "flywheel-ckpt-shape-XXXXXX").string();
  const int fd = ::mkstemp(pattern.data());
  if (fd < 0) throw Error("cannot create a temporary file to parse the shape text of " + origin);
  ::close(fd);
  TempFile temp{pattern};
  {
    std::ofstream out(pattern, std::ios::binary);
    out << text;
    if (!out) throw Error("cannot write a temporary file to parse the shape text of " + origin);
  }
  try {
    Shape shape = load_shape(pattern, {});
    shape.path = origin;
    shape.name.clear();  // the temp file's stem means nothing
    return shape;
  } catch (const std::exception& e) {
    std::string message = e.what();
    // Name the checkpoint, not the temporary file the text passed through.
    for (size_t at; (at = message.find(pattern)) != std::string::npos;) message.replace(at, pattern.size(), origin);
    throw Error("cannot parse the shape text recorded in " + origin + ": " + message);
  }
}

std::string model_summary(const ModelConfig& m) {
  std::string text = detail::concat(m.is_moe() ? "MoE" : "dense", ", ", m.n_layers, " layers, d_model ", m.d_model,
                                    ", ", m.n_heads, " heads (", m.n_kv_heads, " kv)");
  if (m.is_moe())
    text += detail::concat(", ", m.moe_experts, " experts top-", m.moe_top_k, " (expert d_ff ", m.resolved_moe_d_ff(),
                           m.moe_shared_expert ? ", shared expert" : "", ")");
  else
    text += detail::concat(", d_ff ", m.d_ff);
  return text + detail::concat(", vocab ", m.vocab_size, m.tie_embeddings ? ", tied embeddings" : ", untied embeddings");
}

}  // namespace flywheel::ckpt_tool
