#include "parallel/expert_parallel.h"

#include <vector>

#include "core/error.h"

namespace flywheel {

void MeshExpertExchange::exchange_counts(const int64_t* send, int64_t* recv, int64_t per_rank) {
  const int G = ep_.size();
  // Float carries counts exactly below 2^24 rows per expert per rank.
  std::vector<float> send_f(static_cast<size_t>(G * per_rank)), recv_f(send_f.size());
  for (size_t i = 0; i < send_f.size(); ++i) {
    FW_CHECK(send[i] < (int64_t{1} << 24), "expert dispatch: ", send[i], " slots exceed the 2^24 count limit");
    send_f[i] = static_cast<float>(send[i]);
  }
  const std::vector<int64_t> blocks(G, per_rank);
  ep_.all_to_all_v(send_f.data(), blocks, recv_f.data(), blocks);
  for (size_t i = 0; i < recv_f.size(); ++i) recv[i] = static_cast<int64_t>(recv_f[i]);
}

void MeshExpertExchange::exchange_rows(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                                       const std::vector<int64_t>& recv_counts) {
  ep_.all_to_all_v(send, send_counts, recv, recv_counts);
}

void MeshExpertExchange::sum_statistics(double* stats, int64_t count) {
  if (dp_.size() > 1) dp_.all_reduce_sum(stats, count);
}

}  // namespace flywheel
