// Thread control for one rank: our OpenMP loops and OpenBLAS (its OpenMP build) share one pool.
#pragma once

namespace flywheel {

// Sets the thread count for OpenMP regions and BLAS calls.
void set_thread_count(int threads);
int thread_count();
// Threads a rank should use by default: hardware threads on the node / ranks on the node (>= 1).
int default_thread_count(int ranks_on_node);

}  // namespace flywheel
