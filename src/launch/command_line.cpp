#include "launch/command_line.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cxxopts.hpp>

#include "launch/ini_text.h"

namespace flywheel {
namespace {

using Option = CommandLine::Option;
using Kind = Option::Kind;
using Rows = std::vector<std::pair<std::string, std::string>>;  // (name, help) of positionals, help tables

// "--shape FILE", "--json", "--set KEY=VALUE".
std::string option_text(const Option& o) {
  return "--" + o.name + (o.kind == Kind::kFlag ? "" : " " + o.value_name);
}

// "'a', 'b'" for items[from..]
std::string quoted_list(const std::vector<std::string>& items, size_t from) {
  std::string text;
  for (size_t i = from; i < items.size(); ++i) text += (text.empty() ? "'" : ", '") + items[i] + "'";
  return text;
}

// "RUN_A RUN_B"
std::string joined(const Rows& positionals) {
  std::string text;
  for (const auto& [name, help] : positionals) text += (text.empty() ? "" : " ") + name;
  return text;
}

cxxopts::Options cxxopts_spec(const std::string& program, const std::vector<Option>& options) {
  cxxopts::Options spec(program);
  spec.allow_unrecognised_options();  // they come back in order: shape overrides, positionals, or errors
  spec.add_options()("h,help", "");
  for (const Option& o : options) {
    if (o.kind == Kind::kFlag)
      spec.add_options()(o.name, o.help);
    else  // repeatable values are read one by one from arguments(): no splitting at commas
      spec.add_options()(o.name, o.help, cxxopts::value<std::string>());
  }
  return spec;
}

// cxxopts' parse; its errors become UsageErrors. The only value it can find missing is the last token's.
cxxopts::ParseResult run_cxxopts(cxxopts::Options& spec, const std::vector<const char*>& argv) {
  try {
    return spec.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const cxxopts::exceptions::missing_argument&) {
    usage_error(argv.back(), " needs a value");
  } catch (const cxxopts::exceptions::exception& e) {
    usage_error(e.what());
  }
}

// A token cxxopts did not recognise: a shape override, a positional argument, or a usage error.
void sort_unmatched(const std::string& token, bool overrides, std::vector<std::string>& overrides_out,
                    std::vector<std::string>& positionals_out) {
  if (token.size() < 2 || token[0] != '-') {
    positionals_out.push_back(token);
    return;
  }
  if (overrides && parse_override(token)) {
    overrides_out.push_back(token);
    return;
  }
  const bool override_like = token.rfind("--", 0) == 0 && token.find('.') != std::string::npos;
  if (overrides && override_like && token.find('=') == std::string::npos)
    usage_error("shape override ", token, " needs a value: ", token, "=VALUE");
  usage_error("unknown option '", token, "'", overrides ? " (shape overrides look like --model.n_layers=2)" : "");
}

// Wraps `tokens` after `lead` at 100 columns, continuation lines indented under the first token.
std::string wrap(const std::string& lead, const std::vector<std::string>& tokens) {
  std::string text = lead, line = lead;
  const std::string indent(lead.size(), ' ');
  for (const std::string& t : tokens) {
    if (line.size() + 1 + t.size() > 100 && line.size() > lead.size()) {
      text += "\n" + indent;
      line = indent;
    }
    text += " " + t;
    line += " " + t;
  }
  return text;
}

// Two columns, the right one starting at 2 + width + 2: "  --top K        proposals to list (default: 10)".
// A left column wider than `width` gets a line of its own.
std::string table(const Rows& rows, size_t width) {
  const std::string indent(2 + width + 2, ' ');
  std::string text;
  for (const auto& [left, right] : rows) {
    text += "  " + left;
    text += left.size() > width ? "\n" + indent : std::string(width - left.size() + 2, ' ');
    for (const char c : right) text += c == '\n' ? "\n" + indent : std::string(1, c);
    text += "\n";
  }
  return text;
}

}  // namespace

namespace detail {

int64_t parse_integer(const std::string& name, const std::string& text, int64_t min, int64_t max) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, v);
  if (ec == std::errc::invalid_argument || stop != end) usage_error("--", name, " '", text, "' is not an integer");
  if (ec == std::errc::result_out_of_range || v < min || v > max)
    usage_error("--", name, " '", text, "' is out of range [", min, ", ", max, "]");
  return v;
}

uint64_t parse_unsigned(const std::string& name, const std::string& text) {
  uint64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || stop != end) usage_error("--", name, " '", text, "' is not an integer >= 0");
  return v;
}

double parse_number(const std::string& name, const std::string& text) {
  double v = 0;
  const char* end = text.data() + text.size();
  const auto [stop, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || stop != end) usage_error("--", name, " '", text, "' is not a number");
  // from_chars reads "inf" and "nan": no option of any command means either.
  if (!std::isfinite(v)) usage_error("--", name, " '", text, "' is not a finite number");
  return v;
}

}  // namespace detail

CommandLine::CommandLine(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void CommandLine::declare(Option option) {
  FW_CHECK(option.name != "help" && option.name != "h", "--help is every command's");
  for (const Option& o : options_) FW_CHECK(o.name != option.name, "option --", option.name, " is declared twice");
  options_.push_back(std::move(option));
}

CommandLine& CommandLine::flag(const std::string& name, const std::string& help) {
  declare({name, "", help, "", "", Kind::kFlag, false, typeid(bool), nullptr});
  return *this;
}

CommandLine& CommandLine::repeatable(const std::string& name, const std::string& value_name, const std::string& help) {
  declare({name, value_name, help, "", "", Kind::kRepeatable, false, typeid(std::vector<std::string>), nullptr});
  return *this;
}

CommandLine& CommandLine::positional(const std::string& name, const std::string& help) {
  positionals_.emplace_back(name, help);
  return *this;
}

CommandLine& CommandLine::shape_overrides(const std::string& help) {
  overrides_ = true;
  overrides_help_ = help;
  return *this;
}

CommandLine& CommandLine::notes(const std::string& text) {
  notes_ += (notes_.empty() ? "" : "\n") + text + (!text.empty() && text.back() == '\n' ? "" : "\n");
  return *this;
}

ParsedArgs CommandLine::parse(int argc, const char* const* argv) const {
  FW_CHECK(argc >= 1, "argv[0] is the command's name");
  // Everything after "--" is positional; cxxopts sees what comes before.
  std::vector<const char*> head(argv, argv + argc);
  const auto dashes = std::find_if(head.begin() + 1, head.end(), [](const char* a) { return std::string(a) == "--"; });
  const std::vector<std::string> after(dashes == head.end() ? dashes : dashes + 1, head.end());
  head.erase(dashes, head.end());
  cxxopts::Options spec = cxxopts_spec(program_, options_);
  const cxxopts::ParseResult result = run_cxxopts(spec, head);

  ParsedArgs args;
  args.help_ = result.count("help") > 0;
  for (const std::string& token : result.unmatched())
    if (!args.help_) sort_unmatched(token, overrides_, args.overrides_, args.positionals_);
  args.positionals_.insert(args.positionals_.end(), after.begin(), after.end());
  for (const Option& o : options_) read(o, result, args);
  if (!args.help_) check(args);
  return args;
}

void CommandLine::read(const Option& o, const cxxopts::ParseResult& result, ParsedArgs& args) {
  const size_t count = result.count(o.name);
  if (o.kind == Kind::kFlag) {
    args.flags_[o.name] = count > 0 && result[o.name].as<bool>();
  } else if (o.kind == Kind::kRepeatable) {
    std::vector<std::string>& values = args.lists_[o.name];
    for (const cxxopts::KeyValue& kv : result.arguments())
      if (kv.key() == o.name) values.push_back(kv.value());
  } else {
    ParsedArgs::Value& v = args.values_[o.name];
    v.type = o.type;
    v.given = count > 0;
    if (v.given) v.text = result[o.name].as<std::string>();
    else if (!o.default_text.empty()) v.text = o.default_text;
  }
  if (!args.help_ && o.kind != Kind::kRepeatable && count > 1)
    usage_error("--", o.name, " is given ", count == 2 ? "twice" : std::to_string(count) + " times", "; give it once");
}

void CommandLine::check(const ParsedArgs& args) const {
  for (const Option& o : options_)
    if (o.kind == Kind::kValue && args.values_.at(o.name).given) o.check(o.name, *args.values_.at(o.name).text);
  const size_t given = args.positionals_.size(), expected = positionals_.size();
  if (given < expected) usage_error("missing ", joined(positionals_));
  if (given > expected)
    usage_error("unexpected argument", given - expected > 1 ? "s " : " ", quoted_list(args.positionals_, expected),
                expected == 0 ? " (" + program_ + " takes no positional arguments)"
                              : " (expected " + joined(positionals_) + ")");
  for (const Option& o : options_) {
    if (!o.required || args.values_.at(o.name).given) continue;
    const std::string example = ": " + program_ + " needs " + option_text(o) + ", e.g. --" + o.name + " " + o.example;
    usage_error("missing ", option_text(o), o.example.empty() ? "" : example);
  }
}

std::string CommandLine::synopsis() const {
  std::vector<std::string> tokens;
  for (const auto& [name, help] : positionals_) tokens.push_back(name);
  for (const Option& o : options_)
    if (o.required) tokens.push_back(option_text(o));
  for (const Option& o : options_)
    if (!o.required) tokens.push_back("[" + option_text(o) + (o.kind == Kind::kRepeatable ? " ...]" : "]"));
  if (overrides_) tokens.push_back("[--section.key=value ...]");
  return wrap("usage: " + program_, tokens);
}

std::string CommandLine::help() const {
  std::string text = synopsis() + "\n\n" + summary_ + (summary_.empty() || summary_.back() == '\n' ? "" : "\n");
  Rows arguments(positionals_.begin(), positionals_.end());
  Rows options = {{"-h, --help", "show this help and exit"}};
  for (const Option& o : options_) {
    const std::string more = o.kind == Kind::kRepeatable ? " (repeatable)"
                             : o.default_text.empty()    ? ""
                                                         : " (default: " + o.default_text + ")";
    options.emplace_back(option_text(o), o.help + more);
  }
  if (overrides_) options.emplace_back("--section.key=value", overrides_help_);
  size_t width = 0;  // one column for both tables, at most 26 wide
  for (const Rows* rows : {&arguments, &options})
    for (const auto& [left, right] : *rows) width = std::max(width, std::min<size_t>(left.size(), 26));
  if (!arguments.empty()) text += "\narguments:\n" + table(arguments, width);
  text += "\noptions:\n" + table(options, width);
  return text + (notes_.empty() ? "" : "\n" + notes_);
}

bool ParsedArgs::has(const std::string& name) const {
  if (const auto f = flags_.find(name); f != flags_.end()) return f->second;
  if (const auto l = lists_.find(name); l != lists_.end()) return !l->second.empty();
  return value(name).given;
}

bool ParsedArgs::flag(const std::string& name) const {
  const auto f = flags_.find(name);
  FW_CHECK(f != flags_.end(), "--", name, " is not a declared flag");
  return f->second;
}

std::vector<std::string> ParsedArgs::list(const std::string& name) const {
  const auto l = lists_.find(name);
  FW_CHECK(l != lists_.end(), "--", name, " is not a declared repeatable option");
  return l->second;
}

const ParsedArgs::Value& ParsedArgs::value(const std::string& name) const {
  const auto v = values_.find(name);
  FW_CHECK(v != values_.end(), "--", name, " is not a declared option");
  return v->second;
}

}  // namespace flywheel
