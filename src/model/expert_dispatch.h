// Mixture-of-experts token dispatch: moves each (token, expert) slot's row to where its expert runs
// and brings the results back, through an ExpertExchange the caller installs from outside.
//
// Without an exchange (or with one of a single rank) every expert runs here, and dispatch is a
// grouping of the slots by expert. With expert parallelism (parallel/expert_parallel.h), expert e
// lives on exchange rank e / (E / ranks): a rank sends its slots ordered by (destination rank,
// expert, slot index) by one variable all-to-all, and the owner groups what it receives by local
// expert, then by source rank -- every expert sees its rows in one fixed order, so results are
// deterministic. Combine runs the same permutation backwards.
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace flywheel {

// How an MoE layer reaches the ranks that hold its experts; the model knows only this interface.
class ExpertExchange {
 public:
  virtual ~ExpertExchange() = default;
  virtual int ranks() const = 0;  // the expert-parallel group (experts split evenly over it)
  virtual int rank() const = 0;
  // Every rank sends per_rank counts to every rank: send[r * per_rank + i] goes to rank r, and
  // recv[r * per_rank + i] arrives from rank r.
  virtual void exchange_counts(const int64_t* send, int64_t* recv, int64_t per_rank) = 0;
  // Variable all-to-all of fp32 rows: send_counts[r] elements go to rank r, recv_counts[r] come from it.
  virtual void exchange_rows(const float* send, const std::vector<int64_t>& send_counts, float* recv,
                             const std::vector<int64_t>& recv_counts) = 0;
  // Element-wise sum over the ranks whose tokens form the micro-batch (the routing statistics of the
  // load-balancing loss cover the whole micro-batch, as on one rank).
  virtual void sum_statistics(double* stats, int64_t count) = 0;
};

class ExpertDispatch {
 public:
  ExpertDispatch() = default;
  // Plans the exchange for n_slots slots with global expert ids slot_expert[s]; exchanges the counts.
  // exchange null: every expert is local.
  ExpertDispatch(ExpertExchange* exchange, int64_t n_experts, const int32_t* slot_expert, int64_t n_slots);

  int64_t local_experts() const { return local_experts_; }
  int64_t first_expert() const { return first_expert_; }
  // Rows of local expert le in the grouped layout: [expert_offset[le], expert_offset[le + 1]).
  const std::vector<int64_t>& expert_offset() const { return expert_offset_; }
  int64_t grouped_rows() const { return expert_offset_.back(); }

  // slot_rows [n_slots, d] in slot order -> grouped [grouped_rows, d] where the experts run.
  void dispatch(Backend& backend, const float* slot_rows, float* grouped, int64_t d) const;
  // grouped [grouped_rows, d] -> slot_rows [n_slots, d] back where the slots came from.
  void combine(Backend& backend, const float* grouped, float* slot_rows, int64_t d) const;

 private:
  ExpertExchange* exchange_ = nullptr;   // null when every expert is here
  int64_t local_experts_ = 0, first_expert_ = 0;
  std::vector<int64_t> send_order_;      // slot ids in send order
  std::vector<int64_t> send_rows_;       // rows to each exchange rank
  std::vector<int64_t> recv_rows_;       // rows from each exchange rank
  std::vector<int64_t> grouped_of_recv_; // received row i -> grouped row
  std::vector<int64_t> expert_offset_;
};

}  // namespace flywheel
