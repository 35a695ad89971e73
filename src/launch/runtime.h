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
  std::string placement;           // all of the above in words, for the discovery line
};

// Initialises MPI (thread level FUNNELED: only the main thread calls MPI), then discovers the node
// layout (launch/discovery.h: PMIx, else launcher variables, else MPI_Comm_split_type).
Runtime init_runtime(int* argc, char*** argv);
// Rank 0's "discovery: pmix (rank 0/8, local 0/8, node vm)", when a command starts its ranks' work
// (not for --help or an input error).
void log_discovery(const Runtime& rt);
// The lowest rank whose `failed` is true, or -1 when none is: one all-reduce over the world. Every rank
// calls it once, after reading its input and before any other collective, so a rank that found an
// error there leaves none of the others waiting for it.
int first_failed_rank(bool failed);
// Releases PMIx (if discovery initialised it), then finalises MPI.
void finalize_runtime();
// Ends every rank of the job with `code` (used when one rank hits a fatal error, so none hangs).
[[noreturn]] void abort_job(int code);

}  // namespace flywheel
