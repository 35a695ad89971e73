// One command-line parser for every command: `flywheel train|run|plan`, each `flywheel-ckpt`
// subcommand, the benchmarks and the test drivers (make_test_checkpoint, dump_model, mesh_parity,
// comm_volume). A command declares what it accepts once:
//
//   CommandLine command("flywheel plan", "Prints the analytic plan of one optimizer step ...");
//   command.required<std::string>("shape", "FILE", "training shape", "configs/shapes/llama-8b.ini");
//   command.option<int64_t>("top", "K", "proposals to list", "10");   // default, shown as written
//   command.flag("fsdp-prefetch", "memory: add one more gathered unit");
//   command.shape_overrides();                                        // --section.key=value
//   const ParsedArgs args = command.parse(argc, argv);                // argv[0]: the command name
//   if (args.help()) std::cout << command.help();
//
// and gets: typed options (--name VALUE or --name=VALUE; std::string, int, int64_t, uint64_t or
// double, checked while parsing so a bad value fails before any work), flags, repeatable options,
// positional arguments (after "--" everything is one), -h/--help, and --help text generated from
// the declarations (defaults shown as written). Tokenizing is cxxopts'.
//
// Shape overrides are told apart from options by form: a token that is not a declared option and
// reads --section.key=value (launch/ini_text.h, parse_override) is an override, collected in order
// for load_shape, which checks the key against the shape schema. Anything else is a UsageError: an
// unknown option, a positional argument too many or too few, an option given twice (a second
// --shape), a missing required option, a value of the wrong type. With --help nothing is checked.
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <type_traits>
#include <typeindex>
#include <vector>

#include "core/error.h"

namespace cxxopts {
class ParseResult;
}

namespace flywheel {

// A command line its command does not accept. Each main prints it with a pointer to `--help`;
// flywheel-ckpt and the benchmarks exit 2, `flywheel` exits 1 as for any other error.
class UsageError : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void usage_error(const Args&... args) {
  throw UsageError(detail::concat(args...));
}

class ParsedArgs;

class CommandLine {
 public:
  // `program` names the command in its usage line and messages ("flywheel-ckpt reshard");
  // `summary` is the paragraph under the usage line.
  CommandLine(std::string program, std::string summary);

  // --name VALUE of type T; `default_text` (parsed as a given value would be) is shown in --help as written.
  template <typename T>
  CommandLine& option(const std::string& name, const std::string& value_name, const std::string& help,
                      const std::string& default_text = "");
  // --name VALUE that must be given (unless --help is); `example` completes the message when it is missing.
  template <typename T>
  CommandLine& required(const std::string& name, const std::string& value_name, const std::string& help,
                        const std::string& example = "");
  CommandLine& flag(const std::string& name, const std::string& help);  // --name, no value
  // --name VALUE any number of times; each value is kept whole, commas included.
  CommandLine& repeatable(const std::string& name, const std::string& value_name, const std::string& help);
  // The next positional argument, required; no undeclared ones are accepted.
  CommandLine& positional(const std::string& name, const std::string& help);
  // A positional argument that may be left out; it follows every required one (ParsedArgs::positionals
  // is then shorter: the caller supplies the default).
  CommandLine& optional_positional(const std::string& name, const std::string& help);
  // Accept --section.key=value shape overrides (`help` describes them in --help).
  CommandLine& shape_overrides(const std::string& help = "set a key of the shape; the command line wins over the file");
  // Paragraphs printed after the options by --help.
  CommandLine& notes(const std::string& text);

  // Parses argv[1..argc) (argv[0] is the command's name). Throws UsageError.
  ParsedArgs parse(int argc, const char* const* argv) const;
  std::string help() const;

  // One declared option, as parse() and help() read it.
  struct Option {
    std::string name, value_name, help, default_text, example;
    enum class Kind { kValue, kFlag, kRepeatable } kind = Kind::kValue;
    bool required = false;
    std::type_index type = typeid(void);
    void (*check)(const std::string& name, const std::string& text) = nullptr;  // parse_value<type>
  };

 private:
  void declare(Option option);
  static void read(const Option& o, const cxxopts::ParseResult& result, ParsedArgs& args);
  void check(const ParsedArgs& args) const;  // types, positionals, required options
  std::string synopsis() const;

  std::string program_, summary_, notes_, overrides_help_;
  std::vector<Option> options_;
  std::vector<std::pair<std::string, std::string>> positionals_;  // name, help
  size_t required_positionals_ = 0;                                // the first ones of positionals_
  bool overrides_ = false;
};

// What parse() found: every declared option with its text (given or default), positionals, overrides.
class ParsedArgs {
 public:
  bool help() const { return help_; }
  bool has(const std::string& name) const;  // given on the command line
  bool flag(const std::string& name) const;
  // The value given, else the declared default, as the declared type T; nullopt when neither.
  template <typename T>
  std::optional<T> find(const std::string& name) const;
  // As find(), for an option that is required or has a default.
  template <typename T>
  T get(const std::string& name) const;
  std::vector<std::string> list(const std::string& name) const;  // a repeatable option's values
  const std::vector<std::string>& positionals() const { return positionals_; }
  const std::vector<std::string>& overrides() const { return overrides_; }  // "--section.key=value", in order

 private:
  friend class CommandLine;
  struct Value {
    std::type_index type = typeid(void);
    std::optional<std::string> text;  // given, else the default
    bool given = false;
  };
  const Value& value(const std::string& name) const;

  bool help_ = false;
  std::map<std::string, Value> values_;
  std::map<std::string, bool> flags_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::vector<std::string> positionals_, overrides_;
};

// ---- templates -------------------------------------------------------------------------------

namespace detail {
// The text of option --name as T; a UsageError naming the option when it is not one.
int64_t parse_integer(const std::string& name, const std::string& text, int64_t min, int64_t max);
uint64_t parse_unsigned(const std::string& name, const std::string& text);
double parse_number(const std::string& name, const std::string& text);

template <typename T>
T parse_value(const std::string& name, const std::string& text) {
  if constexpr (std::is_same_v<T, std::string>) {
    return text;
  } else if constexpr (std::is_same_v<T, double>) {
    return parse_number(name, text);
  } else if constexpr (std::is_same_v<T, uint64_t>) {
    return parse_unsigned(name, text);
  } else {
    static_assert(std::is_integral_v<T> && std::is_signed_v<T>,
                  "option types: std::string, double, uint64_t or a signed integer");
    return static_cast<T>(parse_integer(name, text, std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
  }
}
}  // namespace detail

template <typename T>
CommandLine& CommandLine::option(const std::string& name, const std::string& value_name, const std::string& help,
                                 const std::string& default_text) {
  Option o{name, value_name, help, default_text, "", Option::Kind::kValue, false, typeid(T),
           [](const std::string& n, const std::string& text) { detail::parse_value<T>(n, text); }};
  if (!default_text.empty()) detail::parse_value<T>(name, default_text);  // a bad default is a bug: fail early
  declare(std::move(o));
  return *this;
}

template <typename T>
CommandLine& CommandLine::required(const std::string& name, const std::string& value_name, const std::string& help,
                                   const std::string& example) {
  option<T>(name, value_name, help);
  options_.back().required = true;
  options_.back().example = example;
  return *this;
}

template <typename T>
std::optional<T> ParsedArgs::find(const std::string& name) const {
  const Value& v = value(name);
  FW_CHECK(v.type == typeid(T), "option --", name, " is declared with another type");
  if (!v.text) return std::nullopt;
  return detail::parse_value<T>(name, *v.text);
}

template <typename T>
T ParsedArgs::get(const std::string& name) const {
  std::optional<T> v = find<T>(name);
  FW_CHECK(v, "option --", name, " has no value: declare it required or with a default, or use find()");
  return *v;
}

}  // namespace flywheel
