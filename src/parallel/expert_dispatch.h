// Expert-parallel token dispatch: moves each (token, expert) slot's row to the rank that owns the
// expert and brings results back, by two variable all-to-alls inside the ep group.
//
// Expert e lives on group rank e / (E / group size). A rank sends its slots ordered by
// (destination rank, expert, slot index); the owner groups what it receives by local expert, then by
// source rank: every expert sees its rows in one fixed order, so results are deterministic.
// With no group (or a group of one) this degenerates to grouping the local slots by expert.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/comm.h"
#include "core/buffer.h"

namespace flywheel {

class ExpertDispatch {
 public:
  ExpertDispatch() = default;
  // Plans the exchange for n_slots slots with global expert ids slot_expert[s]; exchanges the counts.
  ExpertDispatch(Comm* group, int64_t n_experts, const int32_t* slot_expert, int64_t n_slots);

  int64_t local_experts() const { return local_experts_; }
  int64_t first_expert() const { return first_expert_; }
  // Rows of local expert le in the grouped layout: [expert_offset[le], expert_offset[le + 1]).
  const std::vector<int64_t>& expert_offset() const { return expert_offset_; }
  int64_t grouped_rows() const { return expert_offset_.back(); }

  // slot_rows [n_slots, d] in slot order -> grouped [grouped_rows, d] on the owners.
  void dispatch(const float* slot_rows, float* grouped, int64_t d) const;
  // grouped [grouped_rows, d] -> slot_rows [n_slots, d] back on the senders.
  void combine(const float* grouped, float* slot_rows, int64_t d) const;

 private:
  Comm* group_ = nullptr;
  int64_t local_experts_ = 0, first_expert_ = 0;
  std::vector<int64_t> send_order_;      // slot ids in send order
  std::vector<int64_t> send_rows_;       // rows to each group rank
  std::vector<int64_t> recv_rows_;       // rows from each group rank
  std::vector<int64_t> grouped_of_recv_; // received row i -> grouped row
  std::vector<int64_t> expert_offset_;
};

}  // namespace flywheel
