#include "launch/shape.h"

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "data/tokenizer.h"
#include "launch/ini_text.h"
#include "train/run_preference.h"

namespace po = boost::program_options;

namespace flywheel {

namespace {

constexpr const char* kSeeHelp = " (see `flywheel train --help` for the shape keys)";

std::string read_file(const std::string& path) {
  FW_CHECK(std::filesystem::is_regular_file(path), "shape file '", path, "' does not exist or is not a file");
  std::ifstream in(path, std::ios::binary);
  FW_CHECK(in, "shape file '", path, "' cannot be opened for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The overrides by key ("model.n_layers" -> "--model.n_layers=8"), each checked against the schema
// before it is written into the text: a key of the schema, given once, with a value that reads back
// from an INI line as given (the reader ends a value at '#', and a line break would start a new line).
std::map<std::string, std::string> check_overrides(const po::options_description& schema,
                                                   const std::vector<std::string>& overrides) {
  std::map<std::string, std::string> by_key;
  for (const std::string& token : overrides) {
    const std::optional<IniOverride> o = parse_override(token);
    FW_CHECK(o, "command-line override ", token, ": not of the form --section.key=value (e.g. --model.n_layers=2)");
    FW_CHECK(schema.find_nothrow(o->name(), /*approx=*/false), "command-line override ", token,
             ": unrecognised option '--", o->name(), "': the shape has no key ", o->key, " in [", o->section, "]",
             kSeeHelp);
    FW_CHECK(o->value.find_first_of("#\r\n") == std::string::npos, "command-line override ", token,
             ": a shape value cannot hold '#' or a line break (a shape file would read it otherwise)");
    const auto [first, inserted] = by_key.emplace(o->name(), token);
    FW_CHECK(inserted, "command-line override ", token, ": --", o->name(), " is given twice (also ", first->second,
             ")");
  }
  return by_key;
}

// Reads the resolved text into the fields `schema` is bound to. A bad value names where it came from:
// the override that wrote it, else the file.
void parse_shape_text(const std::string& text, const po::options_description& schema, const std::string& path,
                      const std::map<std::string, std::string>& overrides) {
  try {
    std::istringstream in(text);
    po::variables_map values;
    po::store(po::parse_config_file(in, schema, /*allow_unregistered=*/false), values);
    po::notify(values);
  } catch (const po::validation_error& e) {
    if (const auto o = overrides.find(e.get_option_name()); o != overrides.end())
      FW_THROW("command-line override ", o->second, ": ", e.what(), kSeeHelp);
    FW_THROW("shape file '", path, "': ", e.what(), kSeeHelp);
  } catch (const po::error& e) {
    FW_THROW("shape file '", path, "': ", e.what(), kSeeHelp);
  }
}

}  // namespace

Shape load_shape(const std::string& path, const std::vector<std::string>& overrides) {
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
  parse_shape_text(shape.text, schema, path, by_key);
  return shape;
}

TrainSpec Shape::train_spec() const { return {model, train, mesh, name, text}; }

FlywheelSpec Shape::flywheel_spec() const { return {train_spec(), data, rl}; }

void Shape::validate(int64_t world_size) const {
  train_spec().validate();
  FW_CHECK(train.objective == "sft" || train.objective == "dpo", "train.objective = '", train.objective,
           "': `flywheel train` trains sft or dpo; grpo runs with serving replicas under `flywheel run`");
  if (train.objective == "dpo") {
    FW_CHECK(data.source.rfind("jsonl:", 0) == 0, "train.objective = dpo reads preference pairs: data.source = '",
             data.source, "' must be jsonl:<path> with {\"prompt\", \"chosen\", \"rejected\"} per line");
    check_preference_spec(train_spec(), dpo_config());
  }
  FW_CHECK(mesh.serve == 0, "mesh.serve = ", mesh.serve, ": `flywheel train` has no serving ranks; set mesh.serve = 0 ",
           "or use `flywheel run`");
  mesh.check_world(world_size);  // last: a shape that cannot work on any world size says so first
  check_byte_vocabulary(model.vocab_size);
}

}  // namespace flywheel
