// Communication volume and sharded memory: a mesh's ranks send, in one training step, exactly the
// bytes the analytic plan (src/parallel/plan.h) predicts, and hold exactly the parameters it predicts.
//
//   mpirun -n N comm_volume --shape FILE [--section.key=value ...]   (mesh.* overrides pick the mesh)
//
// Every rank builds the Mesh and a Trainer, trains step 0, resets the byte counters of all its
// communicators, trains step 1 and compares, for its own trainer rank:
//   - bytes sent per collective (summed over communicators) and per communicator with plan_rank():
//     exact equality, except the all-to-all when ep > 1 (its rows follow the routing; the plan's
//     uniform-routing estimate is printed beside the measurement, not checked);
//   - Fsdp::shard_elements() x 4 B + Fsdp::trainable_elements() x 12 B with the plan's weights + grads + AdamW
//     m and v (16 B per parameter, or 4 B per frozen LoRA base parameter);
//   - Fsdp::peak_working_bytes() with the plan's FSDP working-copy peak.
// Rank 0 prints every rank's figures and "N passed, M failed"; the exit code is 1 on any failure.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "core/error.h"
#include "launch/command_line.h"
#include "launch/shape.h"
#include "parallel/plan.h"
#include "train/trainer.h"

using namespace flywheel;

namespace {

// Per rank: measured then predicted, for each op, each group, and the two memory figures.
constexpr size_t kOps = kCommOps, kGroups = kMeshGroups + 1;  // + "other" (world, fsdp): expect 0
constexpr size_t kFields = 2 * (kOps + kGroups) + 4;

struct Figures {
  std::vector<uint64_t> v = std::vector<uint64_t>(kFields, 0);
  uint64_t& measured_op(size_t i) { return v[i]; }
  uint64_t& predicted_op(size_t i) { return v[kOps + i]; }
  uint64_t& measured_group(size_t i) { return v[2 * kOps + i]; }
  uint64_t& predicted_group(size_t i) { return v[2 * kOps + kGroups + i]; }
  uint64_t& memory(size_t i) { return v[2 * (kOps + kGroups) + i]; }  // shard m, p; working m, p
};

Figures measure(Mesh& mesh, Trainer& trainer, const Shape& shape, int rank) {
  Comm* groups[] = {&mesh.trainers(), &mesh.pp(), &mesh.dp(), &mesh.cp(), &mesh.ep(), &mesh.edp(), &mesh.world(),
                    &mesh.fsdp()};
  for (Comm* c : groups) c->counters().reset();
  trainer.train_step(1);
  Figures f;
  for (size_t g = 0; g < 8; ++g)
    for (size_t op = 0; op < kOps; ++op) {
      const uint64_t bytes = groups[g]->counters().bytes_sent[op];
      f.measured_op(op) += bytes;
      f.measured_group(std::min(g, kGroups - 1)) += bytes;
    }
  const RankPlan plan = plan_rank(shape.model, shape.train.batch(), shape.mesh, rank);
  for (size_t op = 0; op < kOps; ++op) f.predicted_op(op) = plan.comm.by_op[op];
  for (size_t g = 0; g < kMeshGroups; ++g) f.predicted_group(g) = plan.comm.by_group[g];
  // values 4 B per parameter held, gradients + AdamW m and v 12 B per trainable one (LoRA: the adapters)
  f.memory(0) =
      static_cast<uint64_t>(trainer.shards().shard_elements() * 4 + trainer.shards().trainable_elements() * 12);
  f.memory(1) = static_cast<uint64_t>(plan.memory.weights + plan.memory.grads + plan.memory.optimizer);
  f.memory(2) = static_cast<uint64_t>(trainer.shards().peak_working_bytes());
  f.memory(3) = static_cast<uint64_t>(plan.memory.working);
  return f;
}

struct Tally {
  int passed = 0, failed = 0;
  void line(int rank, const std::string& what, uint64_t measured, uint64_t predicted, bool checked) {
    const bool ok = measured == predicted;
    if (checked) (ok ? passed : failed) += 1;
    std::printf("rank %d  %-26s measured %14llu  predicted %14llu  %s\n", rank, what.c_str(),
                static_cast<unsigned long long>(measured), static_cast<unsigned long long>(predicted),
                !checked ? "(estimate, not checked)" : ok ? "ok" : "FAIL");
  }
};

void report(const std::vector<uint64_t>& all, int ranks, bool ep_active, Tally& t) {
  for (int r = 0; r < ranks; ++r) {
    Figures f;
    f.v.assign(all.begin() + r * kFields, all.begin() + (r + 1) * kFields);
    for (size_t op = 0; op < kOps; ++op) {
      const bool estimate = ep_active && static_cast<CommOp>(op) == CommOp::kAllToAll;
      t.line(r, comm_op_name(static_cast<CommOp>(op)), f.measured_op(op), f.predicted_op(op), !estimate);
    }
    for (size_t g = 0; g < kGroups; ++g) {
      const bool estimate = ep_active && g == static_cast<size_t>(MeshGroup::kEp);
      const std::string name = g < kMeshGroups ? mesh_group_name(static_cast<MeshGroup>(g)) : "world + fsdp";
      if (f.measured_group(g) != 0 || f.predicted_group(g) != 0 || g == kGroups - 1)
        t.line(r, "group " + name, f.measured_group(g), f.predicted_group(g), !estimate);
    }
    t.line(r, "params held (values, grads, moments) B", f.memory(0), f.memory(1), true);
    t.line(r, "FSDP working peak B", f.memory(2), f.memory(3), true);
  }
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  std::unique_ptr<Comm> world = make_mpi_world_comm();
  int code = 0;
  try {
    CommandLine command("comm_volume", "One training step's bytes per collective and communicator, against the plan.");
    command.required<std::string>("shape", "FILE", "training shape (configs/shapes/*.ini)").shape_overrides();
    const ParsedArgs args = command.parse(argc, argv);
    Shape shape = load_shape(args.get<std::string>("shape"), args.overrides());
    shape.validate(world->size());
    auto source = make_data_source(shape.data, shape.train.seq_len, shape.train.seed);
    Mesh mesh(shape.mesh, *world);
    Trainer trainer(shape.train_spec(), *source, mesh);
    trainer.train_step(0);
    Figures mine = measure(mesh, trainer, shape, world->rank());
    std::vector<uint64_t> all(world->rank() == 0 ? kFields * world->size() : 0);
    MPI_Gather(mine.v.data(), static_cast<int>(kFields), MPI_UINT64_T, all.data(), static_cast<int>(kFields),
               MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (world->rank() == 0) {
      std::printf("comm_volume: %s, mesh pp %lld x fsdp %lld x cp %lld, ep %lld; bytes sent in step 1\n",
                  shape.name.c_str(), static_cast<long long>(shape.mesh.pp), static_cast<long long>(shape.mesh.fsdp),
                  static_cast<long long>(shape.mesh.cp), static_cast<long long>(shape.mesh.ep));
      Tally t;
      report(all, world->size(), shape.model.is_moe() && shape.mesh.ep > 1, t);
      std::printf("%d passed, %d failed\n", t.passed, t.failed);
      code = t.failed ? 1 : 0;
    }
    MPI_Bcast(&code, 1, MPI_INT, 0, MPI_COMM_WORLD);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "comm_volume: error on rank %d: %s\n", world->rank(), e.what());
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  world.reset();
  MPI_Finalize();
  return code;
}
