#include "launch/shape.h"

#include <algorithm>
#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/text.h"
#include "data/text_codec.h"
#include "launch/hf_shape.h"
#include "launch/ini_text.h"
#include "train/run_preference.h"

namespace po = boost::program_options;

namespace flywheel {

namespace {

constexpr const char* kSeeHelp = " (see `flywheel train --help` for the shape keys)";

// A shape file's lines as its INI reader sees them: (1-based line number, section, text without the
// comment and the surrounding blanks).
struct ShapeLine {
  int64_t number;
  std::string section, text;
};

std::vector<ShapeLine> shape_lines(const std::string& text) {
  std::vector<ShapeLine> lines;
  std::istringstream in(text);
  std::string section;
  int64_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    line = line.substr(0, line.find('#'));
    const size_t begin = line.find_first_not_of(" \t\r"), end = line.find_last_not_of(" \t\r");
    line = begin == std::string::npos ? std::string() : line.substr(begin, end - begin + 1);
    if (line.size() >= 2 && line.front() == '[' && line.back() == ']') section = line.substr(1, line.size() - 2);
    lines.push_back({number, section, line});
  }
  return lines;
}

// "section.key" of a "key = value" line ("" for other lines).
std::string key_name(const ShapeLine& line) {
  const size_t eq = line.text.find('=');
  if (eq == std::string::npos || eq == 0 || line.text.front() == '[') return "";
  const std::string key = line.text.substr(0, line.text.find_last_not_of(" \t", eq - 1) + 1);
  return line.section.empty() ? key : line.section + "." + key;
}

// "shape file 'x.ini' line 7: " for the `occurrence`-th line that sets `name` (a key, "model.d_model")
// or reads `name` (a line's text as the INI reader reports it); "shape file 'x.ini': " when none does.
std::string where_in_file(const std::string& path, const std::string& file_text, const std::string& name,
                          int occurrence = 1) {
  for (const ShapeLine& line : shape_lines(file_text))
    if ((key_name(line) == name || (!line.text.empty() && line.text == name)) && --occurrence == 0)
      return detail::concat("shape file '", path, "' line ", line.number, ": ");
  return "shape file '" + path + "': ";
}

std::string read_file(const std::string& path) {
  FW_INPUT_CHECK(std::filesystem::is_regular_file(path), "shape file '", path, "' does not exist or is not a file");
  std::ifstream in(path, std::ios::binary);
  FW_INPUT_CHECK(in, "shape file '", path, "' cannot be opened for reading");
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string text = bytes.str();
  // A binary file: its bytes would be echoed by the INI reader's "invalid line '...'".
  if (const std::optional<size_t> at = first_non_text_byte(text))
    FW_INPUT_THROW("shape file '", path, "' is not a text file (at byte offset ", *at, ": a control character or",
                   " not UTF-8); a shape is an INI file such as configs/shapes/tiny-dense.ini");
  return text;
}

// An empty shape would train the struct defaults without a word (checked after parsing, so a
// malformed line is reported as such).
void check_sets_a_key(const std::string& path, const std::string& file_text) {
  const std::vector<ShapeLine> lines = shape_lines(file_text);
  FW_INPUT_CHECK(std::any_of(lines.begin(), lines.end(), [](const ShapeLine& l) { return !key_name(l).empty(); }),
                 "shape file '", path, "' sets no key (it is empty or holds only comments and sections); a shape",
                 " describes at least the model: start from one of configs/shapes/*.ini");
}

// The overrides by key ("model.n_layers" -> "--model.n_layers=8"), each checked against the schema
// before it is written into the text: a key of the schema, given once, with a value that reads back
// from an INI line as given (the reader ends a value at '#', and a line break would start a new line).
std::map<std::string, std::string> check_overrides(const po::options_description& schema,
                                                   const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> by_key;
  for (const std::string& token : overrides) {
    const std::optional<IniOverride> o = parse_override(token);
    FW_INPUT_CHECK(o, "command-line override ", token,
                   ": not of the form --section.key=value (e.g. --model.n_layers=2)");
    FW_INPUT_CHECK(schema.find_nothrow(o->name(), /*approx=*/false), "command-line override ", token,
                   ": unrecognised option '--", o->name(), "': the shape has no key ", o->key, " in [", o->section, "]",
                   kSeeHelp);
    FW_INPUT_CHECK(o->value.find_first_of("#\r\n") == std::string::npos, "command-line override ", token,
                   ": a shape value cannot hold '#' or a line break (a shape file would read it otherwise)");
    const auto [first, inserted] = by_key.emplace(o->name(), token);
    FW_INPUT_CHECK(inserted, "command-line override ", token, ": --", o->name(), " is given twice (also ",
                   first->second, ")");
  }
  return by_key;
}

// Boost reads "-1" into an unsigned key as 2^64 - 1 (lexical_cast wraps, as strtoull does): refuse a
// minus sign on every key bound to an unsigned integer (train.seed) as a bad value.
void refuse_negative_unsigned(const po::parsed_options& parsed, const po::options_description& schema) {
  for (const po::option& o : parsed.options) {
    const po::option_description* key = schema.find_nothrow(o.string_key, /*approx=*/false);
    if (key == nullptr || o.value.empty()) continue;
    const auto* semantic = key->semantic().get();
    const bool is_unsigned = dynamic_cast<const po::typed_value<uint64_t>*>(semantic) != nullptr ||
                             dynamic_cast<const po::typed_value<uint32_t>*>(semantic) != nullptr;
    if (is_unsigned && o.value.front().find('-') != std::string::npos)
      throw po::validation_error(po::validation_error::invalid_option_value, o.string_key, o.value.front());
  }
}

// Reads the resolved text into the fields `schema` is bound to. A bad value names where it came from:
// the override that wrote it, else the file and its line (found in the file's own text: overrides
// add lines to the resolved one).
// Returns the keys the text sets.
std::set<std::string> parse_shape_text(const std::string& text, const po::options_description& schema,
                                       const std::string& path, const std::string& file_text,
                                       const std::map<std::string, std::string>& overrides) {
  try {
    std::istringstream in(text);
    po::variables_map values;
    const po::parsed_options parsed = po::parse_config_file(in, schema, /*allow_unregistered=*/false);
    refuse_negative_unsigned(parsed, schema);
    po::store(parsed, values);
    po::notify(values);
    std::set<std::string> set_keys;
    for (const auto& [name, value] : values)
      if (!value.defaulted()) set_keys.insert(name);
    return set_keys;
  } catch (const po::validation_error& e) {
    if (const auto o = overrides.find(e.get_option_name()); o != overrides.end())
      FW_INPUT_THROW("command-line override ", o->second, ": ", e.what(), kSeeHelp);
    FW_INPUT_THROW(where_in_file(path, file_text, e.get_option_name()), e.what(), kSeeHelp);
  } catch (const po::multiple_occurrences& e) {
    FW_INPUT_THROW(where_in_file(path, file_text, e.get_option_name(), 2), e.what(), "; give each key once");
  } catch (const po::invalid_config_file_syntax& e) {
    FW_INPUT_THROW(where_in_file(path, file_text, e.tokens()), e.what(), kSeeHelp);
  } catch (const po::error_with_option_name& e) {
    FW_INPUT_THROW(where_in_file(path, file_text, e.get_option_name()), e.what(), kSeeHelp);
  } catch (const po::error& e) {
    FW_INPUT_THROW("shape file '", path, "': ", e.what(), kSeeHelp);
  }
}

// model.from_hf: config.json's architecture keys into shape.model and its recorded text.
void resolve_from_hf(Shape& shape, const std::set<std::string>& set_keys, const std::string& file_text,
                     const std::map<std::string, std::string>& overrides) {
  const auto origin = [&](const std::string& key) {
    if (const auto o = overrides.find(key); o != overrides.end()) return "command-line override " + o->second + ": ";
    return where_in_file(shape.path, file_text, key);
  };
  const std::vector<std::string> resolved = resolve_hf_model(shape.train.from_hf, shape.model, set_keys, origin);
  shape.text = apply_overrides(shape.text, resolved);
}

}  // namespace

Shape load_shape(const std::string& path, const std::vector<std::string>& overrides, FromHf from_hf) {
  Shape shape;
  shape.path = path;
  shape.name = std::filesystem::path(path).stem().string();
  const std::string file_text = read_file(path);
  const po::options_description schema = shape_options(shape);
  const std::map<std::string, std::string> by_key = check_overrides(schema, overrides);
  // The resolved shape, recorded with runs and checkpoints: the file's text with every override
  // written in, so a run directory describes exactly the model and run it holds. It is also the one
  // text parsed, so the record cannot disagree with what ran.
  shape.text = apply_overrides(file_text, overrides);
  const std::set<std::string> set_keys = parse_shape_text(shape.text, schema, path, file_text, by_key);
  check_sets_a_key(path, file_text);
  if (from_hf == FromHf::kReadConfig && !shape.train.from_hf.empty())
    resolve_from_hf(shape, set_keys, file_text, by_key);
  if (from_hf == FromHf::kReadConfig) resolve_tokenizer(shape.data, shape.train.from_hf);
  return shape;
}

TrainSpec Shape::train_spec() const { return {model, train, mesh, name, text}; }

FlywheelSpec Shape::flywheel_spec() const { return {train_spec(), data, rl}; }

void Shape::validate(int64_t world_size) const {
  train_spec().validate();
  FW_INPUT_CHECK(train.objective == "sft" || train.objective == "dpo", "train.objective = '", train.objective,
                 "': `flywheel train` trains sft or dpo; grpo runs with serving replicas under `flywheel run`");
  if (train.objective == "dpo") {
    FW_INPUT_CHECK(data.source.rfind("jsonl:", 0) == 0, "train.objective = dpo reads preference pairs: data.source = '",
                   data.source, "' must be jsonl:<path> with {\"prompt\", \"chosen\", \"rejected\"} per line");
    check_preference_spec(train_spec(), dpo_config());
  }
  FW_INPUT_CHECK(mesh.serve == 0, "mesh.serve = ", mesh.serve,
                 ": `flywheel train` has no serving ranks; set mesh.serve = 0 or use `flywheel run`");
  mesh.check_world(world_size);  // last: a shape that cannot work on any world size says so first
  TextCodec::open(data)->check_model_vocabulary(model.vocab_size);
}

}  // namespace flywheel
