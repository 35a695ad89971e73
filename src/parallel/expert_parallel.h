// Expert parallelism applied from outside the model: the ExpertExchange (model/expert_dispatch.h)
// of a trainer rank, over its mesh communicators. Slots travel by variable all-to-all inside the ep
// group (experts split over it); the routing statistics of the load-balancing loss are summed over
// the stage's dp group (fsdp x cp), whose ranks together hold the micro-batch's tokens.
#pragma once

#include "comm/comm.h"
#include "model/expert_dispatch.h"

namespace flywheel {

class MeshExpertExchange final : public ExpertExchange {
 public:
  MeshExpertExchange(Comm& ep, Comm& dp) : ep_(ep), dp_(dp) {}
  int ranks() const override { return ep_.size(); }
  int rank() const override { return ep_.rank(); }
  void exchange_counts(const int64_t* send, int64_t* recv, int64_t per_rank) override;
  void exchange_rows(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                     const std::vector<int64_t>& recv_counts) override;
  void sum_statistics(double* stats, int64_t count) override;

 private:
  Comm& ep_;
  Comm& dp_;
};

}  // namespace flywheel
