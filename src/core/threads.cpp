#include "core/threads.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <thread>

#include "core/error.h"

namespace flywheel {

void set_thread_count(int threads) {
  FW_CHECK(threads >= 1, "thread count ", threads, " must be >= 1");
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int thread_count() { return omp_get_max_threads(); }

int default_thread_count(int ranks_on_node) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / std::max(1, ranks_on_node));
}

}  // namespace flywheel
