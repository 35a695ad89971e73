#include "launch/shape.h"

#include <boost/program_options.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "data/tokenizer.h"
#include "launch/ini_text.h"
#include "train/run_preference.h"

namespace po = boost::program_options;

namespace flywheel {

namespace {
std::string read_file(const std::string& path) {
  FW_CHECK(std::filesystem::is_regular_file(path), "shape file '", path, "' does not exist or is not a file");
  std::ifstream in(path, std::ios::binary);
  FW_CHECK(in, "shape file '", path, "' cannot be opened for reading");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}
}  // namespace

Shape load_shape(const std::string& path, const std::vector<std::string>& overrides) {
  Shape shape;
  shape.path = path;
  shape.name = std::filesystem::path(path).stem().string();
  shape.text = read_file(path);
  po::options_description options = shape_options(shape);
  po::variables_map values;
  po::parsed_options parsed(&options);
  try {
    // Stored first wins in Boost.Program_options: command-line overrides, then the file.
    parsed = po::command_line_parser(overrides)
                 .options(options)
                 .style(po::command_line_style::default_style & ~po::command_line_style::allow_guessing)
                 .run();
    po::store(parsed, values);
  } catch (const po::error& e) {
    FW_THROW("command-line override: ", e.what(), " (see `flywheel train --help` for the shape keys)");
  }
  try {
    std::istringstream file(shape.text);
    po::store(po::parse_config_file(file, options, /*allow_unregistered=*/false), values);
    po::notify(values);
  } catch (const po::error& e) {
    FW_THROW("shape file '", path, "': ", e.what(), " (see `flywheel train --help` for the shape keys)");
  }
  // Record the resolved shape: the file's text with every override written in, so a run directory
  // or a checkpoint describes exactly the model and run it holds.
  for (const po::option& o : parsed.options) {
    const size_t dot = o.string_key.find('.');
    if (dot != std::string::npos && !o.value.empty())
      shape.text = set_ini_value(shape.text, o.string_key.substr(0, dot), o.string_key.substr(dot + 1), o.value.back());
  }
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
