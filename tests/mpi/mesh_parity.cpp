// Mesh parity: a mesh trains the same model to the same numbers as one rank.
//
//   mpirun -n N mesh_parity --shape FILE --steps S [--section.key=value ...]   (mesh.* overrides pick the mesh)
//
// Rank 0 first trains the single-rank reference (a mesh of one over a local communicator) and
// broadcasts its loss curve and final weights. Then every rank trains on the mesh twice from the same
// seed. Checks, each printed with its measured figure:
//   1. loss at every step within kLossRelTol of the reference (relative);
//   2. final weights: every element within kWeightAbsTol of the reference;
//   3. the second mesh run is bit-identical to the first (loss curve and every weight);
//   4. training moved the weights (the reference's largest change is over 10 x kWeightAbsTol), so checks 1-3
//      are not met by a run that learns nothing (e.g. LoRA adapters that never get a gradient).
// Tolerances: a mesh sums gradients in another order than one rank (reduce-scatter of partial sums),
// so values differ by float reassociation: ~1e-7 relative per step in the gradients. AdamW divides
// by sqrt(v), which can amplify a rounding difference on a near-zero gradient element up to about
// lr x |dg / g|; over 5 steps at lr 3e-3 the measured worst weight difference is ~1e-6 (see the
// output), so kWeightAbsTol = 2e-5 = 0.7% of lr: far below the lr-sized steps a real bug causes.
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "core/error.h"
#include "launch/command_line.h"
#include "launch/shape.h"
#include "train/trainer.h"

using namespace flywheel;

namespace {
constexpr double kLossRelTol = 1e-5;
constexpr double kWeightAbsTol = 2e-5;

struct RunResult {
  std::vector<double> losses;
  std::vector<float> weights;  // the stage's slices, in slice order (mesh) or full flat (reference)
  double largest_change = 0;   // max |final - initial| over the weights
};

RunResult train(Trainer& trainer, int64_t steps) {
  RunResult r;
  const std::vector<float> initial(trainer.shards().values().begin(), trainer.shards().values().end());
  for (int64_t s = 0; s < steps; ++s) r.losses.push_back(trainer.train_step(s).loss);
  r.weights.assign(trainer.shards().values().begin(), trainer.shards().values().end());
  for (size_t i = 0; i < initial.size(); ++i)
    r.largest_change = std::max(r.largest_change, static_cast<double>(std::abs(r.weights[i] - initial[i])));
  return r;
}

int g_failures = 0, g_checks = 0;
void check(bool ok, const std::string& what, Comm& world) {
  int bad = ok ? 0 : 1;
  double v = bad;
  world.control().all_reduce_sum(&v, 1);
  ++g_checks;
  if (v > 0) ++g_failures;
  if (world.rank() == 0) std::printf("%s %s\n", v > 0 ? "FAIL" : "ok  ", what.c_str());
}
}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  std::unique_ptr<Comm> world = make_mpi_world_comm();
  int code = 0;
  try {
    CommandLine command("mesh_parity", "Trains on the shape's mesh and on one rank; the two must match.");
    command.required<std::string>("shape", "FILE", "training shape (configs/shapes/*.ini)")
        .option<int64_t>("steps", "N", "training steps", "5")
        .shape_overrides();
    const ParsedArgs args = command.parse(argc, argv);
    const std::string shape_path = args.get<std::string>("shape");
    const int64_t steps = args.get<int64_t>("steps");
    const std::vector<std::string>& overrides = args.overrides();
    std::vector<std::string> reference_overrides;  // the single-rank reference: every override but the mesh
    for (const std::string& o : overrides)
      if (o.rfind("--mesh.", 0) != 0) reference_overrides.push_back(o);
    Shape shape = load_shape(shape_path, overrides);
    shape.validate(world->size());
    Shape ref_shape = load_shape(shape_path, reference_overrides);
    ref_shape.validate(1);
    auto source = make_data_source(shape.data, shape.train.seq_len, shape.train.seed);

    // 1. the single-rank reference on rank 0, shared with everyone.
    RunResult ref;
    std::unique_ptr<Trainer> ref_trainer;
    if (world->rank() == 0) {
      ref_trainer = std::make_unique<Trainer>(ref_shape.train_spec(), *source);
      ref = train(*ref_trainer, steps);
      for (const ShardSlice& sl : ref_trainer->shards().slices())
        FW_CHECK(sl.local_offset == ref_trainer->model().params().info(sl.param).offset,
                 "single-rank shard layout differs from the flat parameter layout");
    }
    ref.losses.resize(steps);
    world->broadcast(ref.losses.data(), steps, DType::kF64, 0);
    world->broadcast(&ref.largest_change, 1, DType::kF64, 0);
    Transformer layout(shape.model, /*allocate_full=*/false);  // the full flat layout, for offsets
    int64_t full = ref.weights.size();
    world->broadcast(&full, 1, DType::kI64, 0);
    ref.weights.resize(full);
    world->broadcast(ref.weights.data(), full, DType::kF32, 0);

    // 2. the mesh, twice.
    Mesh mesh(shape.mesh, *world);
    RunResult runs[2];
    std::vector<ShardSlice> slices;
    for (RunResult& run : runs) {
      Trainer trainer(shape.train_spec(), *source, mesh);
      run = train(trainer, steps);
      slices = trainer.shards().slices();
    }
    double worst_loss = 0;
    for (int64_t s = 0; s < steps; ++s)
      worst_loss = std::max(worst_loss, std::abs(runs[0].losses[s] - ref.losses[s]) / std::abs(ref.losses[s]));
    double worst_weight = 0;
    for (const ShardSlice& sl : slices) {
      const ParamInfo& info = layout.params().info(sl.param);
      const float* mine = runs[0].weights.data() + sl.local_offset;
      const float* theirs = ref.weights.data() + info.offset + sl.row_begin * sl.cols;
      for (int64_t i = 0; i < sl.numel(); ++i)
        worst_weight = std::max(worst_weight, static_cast<double>(std::abs(mine[i] - theirs[i])));
    }
    world->control().all_reduce_max(&worst_weight, 1);
    char text[256];
    std::snprintf(text, sizeof(text), "loss curve vs one rank: worst relative difference %.3g over %lld steps (tol %.0e)",
                  worst_loss, static_cast<long long>(steps), kLossRelTol);
    check(worst_loss <= kLossRelTol, text, *world);
    std::snprintf(text, sizeof(text), "final weights vs one rank: worst absolute difference %.3g (tol %.0e)",
                  worst_weight, kWeightAbsTol);
    check(worst_weight <= kWeightAbsTol, text, *world);
    const bool same = runs[0].losses == runs[1].losses && runs[0].weights == runs[1].weights;
    check(same, "same mesh twice: bit-identical loss curve and weights", *world);
    std::snprintf(text, sizeof(text), "training moved the weights: largest change %.3g (must exceed %.0e)",
                  ref.largest_change, 10 * kWeightAbsTol);
    check(ref.largest_change > 10 * kWeightAbsTol, text, *world);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mesh_parity: error on rank %d: %s\n", world->rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (world->rank() == 0) std::printf("%d passed, %d failed\n", g_checks - g_failures, g_failures);
  code = g_failures ? 1 : 0;
  world.reset();
  MPI_Finalize();
  return code;
}
