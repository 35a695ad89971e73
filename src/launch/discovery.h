// Where this process sits in the job: rank, rank on its node, ranks on its node, and the node.
//
// Sources, tried in order (the first one consistent with MPI wins, and the winner is recorded):
//   1. "pmix":      the PMIx client API, when a PMIx server launched us (srun --mpi=pmix, Open MPI's
//                   mpirun, prterun). PMIX_RANK (the proc), PMIX_LOCAL_RANK, PMIX_LOCAL_SIZE (job-level,
//                   wildcard rank), PMIX_HOSTNAME and PMIX_NODEID.
//   2. "env:ompi", "env:slurm", "env:hydra": the launcher's environment variables (Open MPI, Slurm's
//                   srun, MPICH/Intel Hydra via PMI_RANK), for launchers without PMIx.
//   3. "mpi":       MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): always works, knows no node id.
// Every source is checked against MPI (its rank must equal the MPI world rank, local rank and size must
// be in range); an inconsistent source is skipped with a warning rather than trusted.
//
// The parsing is pure (an environment lookup function in, a Placement out) so it is unit-tested
// without a launcher; only placement_from_pmix / placement_from_mpi talk to the outside world.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace flywheel {

struct Placement {
  int rank = -1;
  int local_rank = -1;  // rank among this job's processes on this node
  int local_size = -1;  // this job's processes on this node
  int node_id = -1;     // -1: the source does not say
  std::string node;     // host name; empty: the source does not say
  std::string source;   // "pmix", "env:ompi", "env:slurm", "env:hydra" or "mpi"
};

// Reads one environment variable (nullopt when unset). Tests pass a map; production passes getenv.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_environment();

// "17" -> 17; anything else (empty, sign, junk, overflow) -> nullopt.
std::optional<int> parse_count(std::string_view text);
// Tasks on node `node` (0-based) from Slurm's compressed list, e.g. "2(x3),1" = 2,2,2,1.
// nullopt when the list is malformed or has no such node.
std::optional<int> slurm_tasks_on_node(std::string_view spec, int node);

// The first complete set of launcher variables: Open MPI (OMPI_COMM_WORLD_RANK, _LOCAL_RANK,
// _LOCAL_SIZE), then Slurm (SLURM_PROCID, SLURM_LOCALID, and the tasks on this node from
// SLURM_STEP_TASKS_PER_NODE, SLURM_TASKS_PER_NODE or SLURM_NTASKS_PER_NODE, at SLURM_NODEID; node
// name SLURMD_NODENAME), then Hydra (PMI_RANK, MPI_LOCALRANKID, MPI_LOCALNRANKS). Open MPI comes
// before Slurm because `mpirun` inside an allocation sees the batch step's Slurm variables too.
std::optional<Placement> placement_from_env(const EnvLookup& env);

// Empty when `p` agrees with MPI (same rank; 0 <= local_rank < local_size <= world_size), otherwise
// what disagrees, for a warning.
std::string placement_mismatch(const Placement& p, int mpi_rank, int world_size);

// PMIx, only when a PMIx server launched us (PMIX_NAMESPACE and PMIX_RANK set): otherwise nullopt and
// *why says so. On success the PMIx client stays initialised until finalize_pmix(), which releases
// every reference taken here; under Open MPI this shares the client MPI already initialised (PMIx
// counts PMIx_Init calls, the last PMIx_Finalize tears it down).
std::optional<Placement> placement_from_pmix(std::string* why);
void finalize_pmix();

// Node-local rank and size from MPI_Comm_split_type; node name from gethostname. Collective over
// MPI_COMM_WORLD.
Placement placement_from_mpi();

// The whole chain above, after MPI_Init. Collective: if any rank must fall back to MPI, all do (the
// split is a collective), and then every rank reports source "mpi".
Placement discover_placement(int mpi_rank, int world_size);

// "pmix (rank 0/8, local 0/8, node vm)": the start-up line's text.
std::string describe_placement(const Placement& p, int world_size);

}  // namespace flywheel
