// make_test_checkpoint: writes committed checkpoints of a small model for the flywheel-ckpt tests
// (tests/cli/ckpt_tool.sh), through the same save_checkpoint a training job calls (local comm, one
// shard).
//
//   make_test_checkpoint --shape FILE --out RUN_DIR [--steps 10,20] [--seed N] [--verbatim-shape]
//                        [--section.key=value ...]
//
// Weights: the model's deterministic initialisation (seed) plus step-dependent noise, so two
// steps differ everywhere; moments: deterministic noise (adam_v >= 0). Same arguments, same bytes.
// The recorded shape text is the file with the overrides written in (the resolved shape); with
// --verbatim-shape the file as is, the overrides lost (what `flywheel train` recorded at first).
//
//   make_test_checkpoint --shape FILE --load RUN_DIR [--section.key=value ...]
//
// loads the newest step with load_checkpoint (the trainer's loader, whole tensors on one rank) and
// prints "loaded step N xxh3 <hex>" over all weights and moments: a resharded copy must print the
// same line as its source.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <xxhash.h>

#include "ckpt/checkpoint.h"
#include "train/checkpointing.h"
#include "comm/comm.h"
#include "core/error.h"
#include "core/log.h"
#include "launch/command_line.h"
#include "launch/shape.h"
#include "model/transformer.h"
#include "shape_text.h"

namespace flywheel {
namespace {

struct Args {
  std::string shape, out, load;
  std::vector<int64_t> steps;
  uint64_t seed = 0;
  bool verbatim_shape = false;  // record the file without the overrides, as `flywheel train` did
  std::vector<std::string> overrides;
};

std::vector<int64_t> parse_steps(const std::string& text) {
  std::vector<int64_t> steps;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, comma - start);
    FW_CHECK(!item.empty() && item.find_first_not_of("0123456789") == std::string::npos, "--steps '", text,
             "': expected comma-separated step numbers, e.g. 10,20");
    steps.push_back(std::stoll(item));
    start = comma + 1;
  }
  return steps;
}

CommandLine command_line() {
  CommandLine command("make_test_checkpoint",
                      "Writes committed checkpoints of a small model for tests/cli/ckpt_tool.sh, or with --load\n"
                      "loads the newest step of RUN_DIR and prints a hash of its weights and moments.");
  command.required<std::string>("shape", "FILE", "training shape (configs/shapes/*.ini)")
      .option<std::string>("out", "RUN_DIR", "run directory to write the steps to")
      .option<std::string>("load", "RUN_DIR", "run directory to load instead (exactly one of --out, --load)")
      .option<std::string>("steps", "LIST", "steps to write, comma-separated", "10")
      .option<uint64_t>("seed", "N", "weights and noise seed", "7")
      .flag("verbatim-shape", "record the shape file without the overrides, as `flywheel train` first did")
      .shape_overrides();
  return command;
}

Args parse_args(const ParsedArgs& parsed) {
  Args args;
  args.shape = parsed.get<std::string>("shape");
  args.out = parsed.find<std::string>("out").value_or("");
  args.load = parsed.find<std::string>("load").value_or("");
  if (args.out.empty() == args.load.empty()) usage_error("give one of --out RUN_DIR / --load RUN_DIR");
  args.steps = parse_steps(parsed.get<std::string>("steps"));
  args.seed = parsed.get<uint64_t>("seed");
  args.verbatim_shape = parsed.flag("verbatim-shape");
  args.overrides = parsed.overrides();
  return args;
}

// Uniform in [-1, 1) from 24 random bits: exact in float, identical on every platform.
void fill_noise(std::vector<float>& v, uint64_t key, float scale, bool non_negative) {
  std::mt19937_64 rng(key);
  for (float& x : v) {
    const float u = static_cast<float>(static_cast<int64_t>(rng() >> 40) - (int64_t{1} << 23)) / (1 << 23);
    x = non_negative ? scale * u * u : scale * u;
  }
}

void save_step(const Shape& shape, const Args& args, const std::string& shape_text, int64_t step) {
  Transformer model(shape.model);
  model.initialize(args.seed);
  const size_t n = static_cast<size_t>(model.params().numel());
  std::vector<float> noise(n), adam_m(n), adam_v(n);
  fill_noise(noise, args.seed * 1000003 + step, 1e-3f, false);
  fill_noise(adam_m, args.seed * 1000003 + step + 1, 1e-3f, false);
  fill_noise(adam_v, args.seed * 1000003 + step + 2, 1e-6f, true);
  float* w = model.params().values().data();
  for (size_t i = 0; i < n; ++i) w[i] += noise[i];

  CheckpointState state;
  state.step = step;
  state.seed = args.seed;
  state.shape_text = shape_text;
  const MeshConfig& m = shape.mesh;
  state.mesh = {{"pp", m.pp}, {"fsdp", m.fsdp}, {"cp", m.cp}, {"ep", m.ep}, {"serve", m.serve}};
  state.extra = {{"shape_name", shape.name}, {"data_cursor", step * 32}, {"made_by", "make_test_checkpoint"}};
  std::unique_ptr<Comm> comm = make_local_comm();
  save_checkpoint(*comm, args.out, state, whole_tensor_slices(model.params(), adam_m.data(), adam_v.data()), 0);
}

void load_and_hash(const Shape& shape, const std::string& run_dir) {
  Transformer model(shape.model);
  const size_t n = static_cast<size_t>(model.params().numel());
  std::vector<float> all(3 * n);  // weights are bound to the model; moments follow, then hashed together
  std::vector<TensorSlice> slices = whole_tensor_slices(model.params(), all.data() + n, all.data() + 2 * n);
  std::unique_ptr<Comm> comm = make_local_comm();
  const LoadResult result = load_checkpoint(*comm, run_dir, std::nullopt, slices);
  std::memcpy(all.data(), model.params().values().data(), n * sizeof(float));
  std::printf("loaded step %lld xxh3 %016llx\n", static_cast<long long>(result.step),
              static_cast<unsigned long long>(XXH3_64bits(all.data(), all.size() * sizeof(float))));
}

}  // namespace
}  // namespace flywheel

int main(int argc, char** argv) {
  using namespace flywheel;
  configure_logging(-1, LogLevel::kWarn);
  try {
    const CommandLine command = command_line();
    const ParsedArgs parsed = command.parse(argc, argv);
    if (parsed.help()) {
      std::fputs(command.help().c_str(), stdout);
      return 0;
    }
    const Args args = parse_args(parsed);
    const Shape shape = load_shape(args.shape, args.overrides);
    shape.model.validate();
    if (!args.load.empty()) {
      load_and_hash(shape, args.load);
      return 0;
    }
    // load_shape records the resolved text (overrides written in); --verbatim-shape re-reads the raw file.
    std::string text = shape.text;
    if (args.verbatim_shape) {
      std::ifstream raw(args.shape, std::ios::binary);
      text.assign(std::istreambuf_iterator<char>(raw), std::istreambuf_iterator<char>());
    }
    for (int64_t step : args.steps) save_step(shape, args, text, step);
    std::printf("wrote step(s) to %s\n", args.out.c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_test_checkpoint: error: %s\n", e.what());
    return 1;
  }
}
