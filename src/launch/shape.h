// Training shapes: one INI file = model + mesh + objective + data (configs/shapes/*.ini).
// One schema, built with Boost.Program_options, serves the file and the command line, so any key
// can be overridden as --section.key=value (e.g. --model.n_layers=8); the command line wins.
// Unknown keys, malformed lines and values of the wrong type are errors naming the file and key.
#pragma once

#include <string>
#include <vector>

#include <boost/program_options/options_description.hpp>

#include "model/config.h"
#include "parallel/mesh_config.h"
#include "rl/rl_config.h"
#include "train/data_source.h"
#include "train/train_config.h"

namespace flywheel {

struct Shape {
  std::string path;  // the shape file as given
  std::string name;  // file stem: "tiny-dense"
  std::string text;  // the file's bytes (recorded with checkpoints and runs)
  ModelConfig model;
  TrainConfig train;
  DataConfig data;
  MeshConfig mesh;
  RlConfig rl;

  // Cross-section checks (model vs train vs mesh); each section validates itself too.
  void validate(int64_t world_size) const;
  // The extra checks of `flywheel run` (trainers + serving replicas + the RL objective).
  void validate_rl(int64_t world_size) const;
};

// All shape keys, bound to the fields of `shape` with the struct defaults shown in --help.
boost::program_options::options_description shape_options(Shape& shape);

// Reads `path`, then applies `overrides` ("--model.n_layers=8" style tokens). Throws flywheel::Error.
Shape load_shape(const std::string& path, const std::vector<std::string>& overrides);

}  // namespace flywheel
