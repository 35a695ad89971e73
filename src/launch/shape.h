// Training shapes: one INI file = model + mesh + objective + data (configs/shapes/*.ini), read into
// the per-layer configuration structs and assembled into what each command hands down.
// The schema (Boost.Program_options, shape_schema.cpp) is the INI reader's. Any key can be overridden
// on the command line as --section.key=value (e.g. --model.n_layers=8; launch/command_line.h collects
// them): each override is checked against the schema's keys and written into the file's text, and
// that text is parsed once, so the command line wins and the recorded text is what ran.
// Unknown keys, malformed lines and values of the wrong type are errors naming the file and key, or
// the override a value came from.
#pragma once

#include <string>
#include <vector>

#include <boost/program_options/options_description.hpp>

#include "data/data_source.h"
#include "model/config.h"
#include "parallel/mesh_config.h"
#include "rl/flywheel_spec.h"
#include "rl/rl_config.h"
#include "train/loss.h"
#include "train/train_config.h"
#include "train/train_spec.h"

namespace flywheel {

struct Shape {
  std::string path;  // the shape file as given
  std::string name;  // file stem: "tiny-dense"
  std::string text;  // the file's bytes with the overrides written in (recorded with checkpoints and runs)
  ModelConfig model;
  TrainConfig train;
  DataConfig data;
  MeshConfig mesh;
  RlConfig rl;

  // The per-layer configurations each command hands down (nothing below launch/ sees a Shape).
  TrainSpec train_spec() const;
  FlywheelSpec flywheel_spec() const;  // `flywheel run`: its validate() has the run's checks
  DpoConfig dpo_config() const { return {rl.dpo_beta}; }

  // The checks of `flywheel train` on a job of world_size ranks: the trainer's (TrainSpec::validate),
  // the objective's, and the job's. Errors name the keys.
  void validate(int64_t world_size) const;
};

// All shape keys, bound to the fields of `shape` with the struct defaults shown in --help.
boost::program_options::options_description shape_options(Shape& shape);

// model.from_hf in a shape: kReadConfig reads DIR/config.json into [model] and writes its values into
// the text (launch/hf_shape.h); kAsRecorded takes the text as it is: a recorded shape (a run's
// shape.ini, a checkpoint's shape_text) already holds them, and DIR may be gone.
enum class FromHf { kReadConfig, kAsRecorded };

// Reads `path` with `overrides` ("--model.n_layers=8" style tokens, applied in order) written into its
// text. Throws flywheel::Error.
Shape load_shape(const std::string& path, const std::vector<std::string>& overrides,
                 FromHf from_hf = FromHf::kReadConfig);

}  // namespace flywheel
