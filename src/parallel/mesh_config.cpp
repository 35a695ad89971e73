#include "parallel/mesh_config.h"

#include <cstdlib>
#include <string>

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

namespace {
// How to ask for `ranks` ranks from where we run: a batch script's srun takes its task count from
// sbatch (Slurm sets ENVIRONMENT=BATCH in a batch job), an allocation's srun from -n, else mpirun.
std::string launch_hint(int64_t ranks) {
  const char* environment = std::getenv("ENVIRONMENT");
  if (environment != nullptr && std::string(environment) == "BATCH")
    return detail::concat("submit with sbatch -n ", ranks);
  if (std::getenv("SLURM_JOB_ID") != nullptr) return detail::concat("launch with srun -n ", ranks);
  return detail::concat("launch with mpirun -n ", ranks);
}
}  // namespace

void MeshConfig::check_world(int64_t world) const {
  FW_INPUT_CHECK(world == world_size(), "the mesh needs pp x fsdp x cp + serve = ", pp, " x ", fsdp, " x ", cp,
                 " + ", serve, " = ", world_size(), " ranks, but the job has ", world, " (", launch_hint(world_size()),
                 ")");
}

}  // namespace flywheel
