// The process's place in the job: MPI world rank and size, and rank / size on this node.
#pragma once

namespace flywheel {

struct Runtime {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // rank among the processes on this node (decides threads now, the GPU later)
  int local_size = 1;
};

// Initialises MPI (thread level FUNNELED: only the main thread calls MPI) and discovers the node layout.
Runtime init_runtime(int* argc, char*** argv);
void finalize_runtime();
// Ends every rank of the job with `code` (used when one rank hits a fatal error, so none hangs).
[[noreturn]] void abort_job(int code);

}  // namespace flywheel
