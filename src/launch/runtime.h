// The process's place in the job: MPI world rank and size, rank / size on this node, and the node.
#pragma once

#include <string>

namespace flywheel {

struct Runtime {
  int rank = 0;
  int world_size = 1;
  // Rank among this job's processes on this node, and how many there are. They decide the threads
  // now (default train.threads = hardware threads / local_size, see core/threads.h) and will pick
  // the GPU in a CUDA build (device = local_rank % visible devices, one rank per GPU).
  int local_rank = 0;
  int local_size = 1;
  std::string node;                // host name of this node
  int node_id = -1;                // launcher's node index; -1 when the source does not say
  std::string discovery = "none";  // where the layout came from: pmix, env:ompi, env:slurm, env:hydra, mpi
};

// Initialises MPI (thread level FUNNELED: only the main thread calls MPI), then discovers the node
// layout (launch/discovery.h: PMIx, else launcher variables, else MPI_Comm_split_type) and logs it
// on rank 0: "discovery: pmix (rank 0/8, local 0/8, node vm)".
Runtime init_runtime(int* argc, char*** argv);
// Releases PMIx (if discovery initialised it), then finalises MPI.
void finalize_runtime();
// Ends every rank of the job with `code` (used when one rank hits a fatal error, so none hangs).
[[noreturn]] void abort_job(int code);

}  // namespace flywheel
