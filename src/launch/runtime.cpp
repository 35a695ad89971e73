#include "launch/runtime.h"

#include <mpi.h>

#include <cstdlib>

#include "core/error.h"
#include "core/log.h"
#include "launch/discovery.h"

namespace flywheel {

Runtime init_runtime(int* argc, char*** argv) {
  int provided = 0;
  FW_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS, "MPI_Init_thread failed");
  Runtime rt;
  MPI_Comm_rank(MPI_COMM_WORLD, &rt.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &rt.world_size);
  // Logging as main() sets it, already now: discovery warns per rank.
  configure_logging(rt.world_size > 1 ? rt.rank : -1, LogLevel::kInfo);
  // After MPI_Init on purpose: Open MPI has initialised PMIx by then, so our PMIx_Init only takes a
  // reference on the same client connection instead of racing MPI to create it.
  const Placement p = discover_placement(rt.rank, rt.world_size);
  rt.local_rank = p.local_rank;
  rt.local_size = p.local_size;
  rt.node = p.node;
  rt.node_id = p.node_id;
  rt.discovery = p.source;
  rt.placement = describe_placement(p, rt.world_size);
  return rt;
}

void log_discovery(const Runtime& rt) { log_info("discovery: ", rt.placement); }

int first_failed_rank(bool failed) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int first = failed ? rank : size;
  MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return first < size ? first : -1;
}

void finalize_runtime() {
  // Our PMIx reference goes first so MPI_Finalize drops the last one and tears the client down.
  finalize_pmix();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void abort_job(int code) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace flywheel
