// load_shape with command-line overrides: the resolved text recorded with runs and checkpoints
// (Shape::text) is byte for byte what it was before overrides went through launch/command_line.h,
// that text is what the shape holds, and errors name the override or the file they come from.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "launch/shape.h"
#include "test_util.h"

namespace flywheel {
namespace {

using testing::error_message;
using testing::TempDir;

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = (dir.path / (name + ".ini")).string();
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct TextCase {
  const char* name;
  const char* file;
  std::vector<std::string> overrides;
  const char* resolved;
};

// `resolved` was captured from load_shape before the shared command-line parser (Boost's
// command_line_parser over the overrides, then set_ini_value per parsed option): comments kept, an
// inline comment on a replaced line dropped, a new key at the end of its section, a new section at
// the end, CRLF lines kept around LF ones, a missing final newline added.
const TextCase kTextCases[] = {
    {"commented",
     "# A shape with comments.\n[model]\nd_model = 64   # width\nn_layers = 3\n\n[train]\n# steps = 9\nlr = 1e-3\n",
     {"--model.n_layers=2", "--train.steps=6", "--rl.task=reverse", "--model.d_model=32"},
     "# A shape with comments.\n[model]\nd_model = 32\nn_layers = 2\n\n[train]\n# steps = 9\nlr = 1e-3\nsteps = 6\n\n"
     "[rl]\ntask = reverse\n"},
    {"no-newline", "[model]\nd_model = 64\nn_layers = 3", {"--train.steps=6", "--train.run_name=x"},
     "[model]\nd_model = 64\nn_layers = 3\n\n[train]\nsteps = 6\nrun_name = x\n"},
    {"crlf", "# comment\r\n[model]\r\nd_model = 64\r\nn_layers = 3 # three\r\n\r\n[train]\r\nsteps = 5\r\n",
     {"--model.n_layers=2", "--model.moe_d_ff=48"},
     "# comment\r\n[model]\r\nd_model = 64\r\nn_layers = 2\nmoe_d_ff = 48\n\r\n[train]\r\nsteps = 5\r\n"},
    {"repeated-section", "[model]\nn_layers = 3\n\n[train]\nlr = 1e-3\n\n[model]\nd_ff = 96\n",
     {"--model.d_ff=128", "--model.d_model=64"},
     "[model]\nn_layers = 3\n\n[train]\nlr = 1e-3\n\n[model]\nd_ff = 128\nd_model = 64\n"},
    {"new-sections", "[train]\nsteps = 5\n", {"--rl.task=reverse", "--mesh.fsdp=1"},
     "[train]\nsteps = 5\n\n[rl]\ntask = reverse\n\n[mesh]\nfsdp = 1\n"},
    {"spaces", "[train]\nout_dir = runs\n", {"--train.out_dir=/tmp/a b", "--data.source=jsonl:/x/y.jsonl"},
     "[train]\nout_dir = /tmp/a b\n\n[data]\nsource = jsonl:/x/y.jsonl\n"},
};

TEST(ShapeText, OverridesAreWrittenIntoTheTextAsBefore) {
  TempDir dir("shape-text");
  for (const TextCase& c : kTextCases)
    EXPECT_EQ(load_shape(write(dir, c.name, c.file), c.overrides).text, c.resolved) << c.name;
}

std::vector<std::string> catalog_shapes() {
  std::vector<std::string> paths;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(FLYWHEEL_SOURCE_DIR) + "/configs/shapes"))
    if (entry.path().extension() == ".ini") paths.push_back(entry.path().string());
  EXPECT_GE(paths.size(), 7u);
  return paths;
}

TEST(ShapeText, WithoutOverridesItIsTheFilesBytes) {
  for (const std::string& path : catalog_shapes()) EXPECT_EQ(load_shape(path, {}).text, read(path)) << path;
}

// The recorded text is the one text parsed: loading it again, without the overrides, gives the same
// shape and the same text.
TEST(ShapeText, TheRecordedTextIsWhatTheShapeHolds) {
  TempDir dir("shape-record");
  const std::vector<std::string> overrides = {"--model.n_layers=2", "--train.steps=7", "--train.run_name=again",
                                              "--data.source=task:reverse", "--mesh.fsdp=2", "--rl.group_size=3"};
  for (const std::string& path : catalog_shapes()) {
    const Shape shape = load_shape(path, overrides);
    EXPECT_EQ(shape.model.n_layers, 2) << path;
    EXPECT_EQ(shape.train.steps, 7) << path;
    const Shape again = load_shape(write(dir, shape.name, shape.text), {});
    EXPECT_EQ(again.text, shape.text) << path;
    EXPECT_EQ(again.model.n_layers, 2);
    EXPECT_EQ(again.model.d_model, shape.model.d_model);
    EXPECT_EQ(again.train.steps, 7);
    EXPECT_EQ(again.train.run_name, "again");
    EXPECT_EQ(again.data.source, "task:reverse");
    EXPECT_EQ(again.mesh.fsdp, 2);
    EXPECT_EQ(again.rl.group_size, 3);
  }
}

TEST(ShapeOverrides, TheCommandLineWinsOverTheFile) {
  TempDir dir("shape-wins");
  // The file's own value is never read, so a bad one that is overridden does not matter.
  const std::string path = write(dir, "s", "[model]\nn_layers = abc\nd_model = 96\n");
  const Shape shape = load_shape(path, {"--model.n_layers=3"});
  EXPECT_EQ(shape.model.n_layers, 3);
  EXPECT_EQ(shape.model.d_model, 96);
}

TEST(ShapeOverrides, AnUnknownKeyNamesTheOverrideAndTheHelp) {
  TempDir dir("shape-unknown");
  const std::string message = error_message([&] { load_shape(write(dir, "s", "[model]\nd_model = 64\n"), {"--model.widht=3"}); });
  EXPECT_NE(message.find("command-line override --model.widht=3: unrecognised option '--model.widht'"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("`flywheel train --help`"), std::string::npos) << message;
}

TEST(ShapeOverrides, ATypeErrorNamesWhereTheValueCameFrom) {
  TempDir dir("shape-type");
  const std::string file = write(dir, "s", "[model]\nd_model = 64\n");
  std::string message = error_message([&] { load_shape(file, {"--model.n_layers=abc"}); });
  EXPECT_NE(message.find("command-line override --model.n_layers=abc: the argument ('abc') for option 'model.n_layers' "
                         "is invalid"),
            std::string::npos)
      << message;
  const std::string bad_file = write(dir, "bad", "[model]\nd_model = sixty-four\n");
  message = error_message([&] { load_shape(bad_file, {"--model.n_layers=2"}); });
  EXPECT_NE(message.find("shape file '" + bad_file + "' line 2: the argument ('sixty-four') for option 'model.d_model'"),
            std::string::npos)
      << message;
}

TEST(ShapeOverrides, WhatAShapeFileCannotHoldIsRefused) {
  TempDir dir("shape-refused");
  const std::string path = write(dir, "s", "[model]\nd_model = 64\n");
  auto message = [&](const std::vector<std::string>& overrides) {
    return error_message([&] { load_shape(path, overrides); });
  };
  EXPECT_NE(message({"--train.steps=5", "--train.steps=6"}).find("--train.steps is given twice (also --train.steps=5)"),
            std::string::npos);
  EXPECT_NE(message({"--train.run_name=a#b"}).find("cannot hold '#'"), std::string::npos);
  EXPECT_NE(message({"--train.run_name=a\n[model]"}).find("or a line break"), std::string::npos);
  EXPECT_NE(message({"--model.n_layers"}).find("not of the form --section.key=value"), std::string::npos);
}

// What a shape file is refused for, with the file and, where there is one, the line.
TEST(ShapeFile, EmptyBinaryAndRepeatedKeysAreRefusedNamingTheFileAndLine) {
  TempDir dir("shape-file");
  for (const char* text : {"", "\n\n", "# only a comment\n", "[model]\n\n[train]\n# steps = 3\n"}) {
    const std::string path = write(dir, "empty", text);
    const std::string message = error_message([&] { load_shape(path, {"--train.steps=3"}); });
    EXPECT_NE(message.find("shape file '" + path + "' sets no key"), std::string::npos) << message;
  }
  const std::string binary = write(dir, "binary", std::string("[model]\nd_model = 64\n\x89HDF\r\n\x1a\n\0\0", 31));
  std::string message = error_message([&] { load_shape(binary, {}); });
  EXPECT_NE(message.find("shape file '" + binary + "' is not a text file (at byte offset 21"), std::string::npos)
      << message;
  EXPECT_EQ(message.find("HDF"), std::string::npos) << "the file's bytes are echoed: " << message;

  const std::string repeated = write(dir, "repeated", "[model]\nd_model = 64\n# n_layers = 1\n\nd_model = 32\n");
  message = error_message([&] { load_shape(repeated, {}); });
  EXPECT_NE(message.find("shape file '" + repeated + "' line 5: option 'model.d_model' cannot be specified more than once"),
            std::string::npos)
      << message;
  const std::string unknown = write(dir, "unknown", "[train]\nsteps = 3\n\n[model]\nwidth = 3 # typo\n");
  message = error_message([&] { load_shape(unknown, {"--train.steps=4"}); });
  EXPECT_NE(message.find("shape file '" + unknown + "' line 5: unrecognised option 'model.width'"), std::string::npos)
      << message;
  const std::string malformed = write(dir, "malformed", "[model]\nd_model = 64\n  n_layers 2  # no '='\n");
  message = error_message([&] { load_shape(malformed, {}); });
  EXPECT_NE(message.find("shape file '" + malformed + "' line 3: the options configuration file contains an invalid "
                         "line 'n_layers 2'"),
            std::string::npos)
      << message;
  EXPECT_EQ(message.find("src/"), std::string::npos) << message;
}

}  // namespace
}  // namespace flywheel
