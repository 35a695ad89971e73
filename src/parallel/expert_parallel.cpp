#include "parallel/expert_parallel.h"

#include <vector>

namespace flywheel {

void MeshExpertExchange::exchange_counts(const int64_t* send, int64_t* recv, int64_t per_rank) {
  const std::vector<int64_t> blocks(ep_.size(), per_rank);
  ep_.all_to_all_v(send, blocks, recv, blocks);
}

void MeshExpertExchange::exchange_rows(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                                       const std::vector<int64_t>& recv_counts) {
  ep_.all_to_all_v(send, send_counts, recv, recv_counts);
}

// Host doubles (backend.routing_statistics writes them to host memory): the control plane.
void MeshExpertExchange::sum_statistics(double* stats, int64_t count) {
  if (dp_.size() > 1) dp_.control().all_reduce_sum(stats, count);
}

}  // namespace flywheel
