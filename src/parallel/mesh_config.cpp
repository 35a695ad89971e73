#include "parallel/mesh_config.h"

#include "core/error.h"

namespace flywheel {

void MeshConfig::validate() const {
  auto positive = [](const char* key, int64_t value) {
    FW_INPUT_CHECK(value > 0, "mesh.", key, " = ", value, ": must be a positive integer");
  };
  positive("pp", pp);
  positive("fsdp", fsdp);
  positive("cp", cp);
  positive("ep", ep);
  FW_INPUT_CHECK(serve >= 0, "mesh.serve = ", serve, ": must be >= 0");
  FW_INPUT_CHECK((fsdp * cp) % ep == 0, "mesh.ep = ", ep, " does not divide mesh.fsdp x mesh.cp = ", fsdp * cp,
                 ": expert parallelism folds over the fsdp x cp ranks");
}

void MeshConfig::check_world(int64_t world) const {
  FW_CHECK(world == world_size(), "the mesh needs pp x fsdp x cp + serve = ", pp, " x ", fsdp, " x ", cp, " + ", serve,
           " = ", world_size(), " ranks, but the job has ", world,
           " (launch with mpirun -n ", world_size(), " or srun -n ", world_size(), ")");
}

}  // namespace flywheel
