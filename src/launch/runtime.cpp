#include "launch/runtime.h"

#include <mpi.h>

#include <cstdlib>

#include "core/error.h"

namespace flywheel {

Runtime init_runtime(int* argc, char*** argv) {
  int provided = 0;
  FW_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS, "MPI_Init_thread failed");
  Runtime rt;
  MPI_Comm_rank(MPI_COMM_WORLD, &rt.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &rt.world_size);
  // Ranks sharing memory are the ranks on this node, whatever launched us (mpirun, srun, singleton).
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rt.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &rt.local_rank);
  MPI_Comm_size(node, &rt.local_size);
  MPI_Comm_free(&node);
  return rt;
}

void finalize_runtime() {
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
