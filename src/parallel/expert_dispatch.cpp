#include "parallel/expert_dispatch.h"

#include <cstring>

#include "core/error.h"

namespace flywheel {

ExpertDispatch::ExpertDispatch(Comm* group, int64_t n_experts, const int32_t* slot_expert, int64_t n_slots)
    : group_(group && group->size() > 1 ? group : nullptr) {
  const int G = group_ ? group_->size() : 1, me = group_ ? group_->rank() : 0;
  FW_CHECK(n_experts % G == 0, n_experts, " experts do not split over an expert-parallel group of ", G);
  local_experts_ = n_experts / G;
  first_expert_ = me * local_experts_;

  // Send order: counting sort of the slots by expert (destination rank is expert / local_experts).
  std::vector<int64_t> per_expert(n_experts + 1, 0);
  for (int64_t s = 0; s < n_slots; ++s) ++per_expert[slot_expert[s] + 1];
  for (int64_t e = 0; e < n_experts; ++e) per_expert[e + 1] += per_expert[e];
  send_order_.resize(n_slots);
  std::vector<int64_t> cursor(per_expert.begin(), per_expert.end() - 1);
  for (int64_t s = 0; s < n_slots; ++s) send_order_[cursor[slot_expert[s]]++] = s;

  // Counts: to each rank, rows for each of its local experts.
  std::vector<float> send_counts(n_experts), recv_counts(n_experts);
  for (int64_t e = 0; e < n_experts; ++e) send_counts[e] = static_cast<float>(per_expert[e + 1] - per_expert[e]);
  send_rows_.assign(G, 0);
  for (int64_t e = 0; e < n_experts; ++e) send_rows_[e / local_experts_] += per_expert[e + 1] - per_expert[e];
  if (group_) {
    // Float carries counts exactly below 2^24 rows per expert per rank.
    FW_CHECK(n_slots < (int64_t{1} << 24), "expert dispatch: ", n_slots, " slots exceed the 2^24 count limit");
    const std::vector<int64_t> blocks(G, local_experts_);
    group_->all_to_all_v(send_counts.data(), blocks, recv_counts.data(), blocks);
  } else {
    recv_counts = send_counts;
  }

  // Receive layout: source-major, then local expert. Grouped layout: local expert, then source.
  recv_rows_.assign(G, 0);
  expert_offset_.assign(local_experts_ + 1, 0);
  for (int src = 0; src < G; ++src)
    for (int64_t le = 0; le < local_experts_; ++le) {
      const auto n = static_cast<int64_t>(recv_counts[src * local_experts_ + le]);
      recv_rows_[src] += n;
      expert_offset_[le + 1] += n;
    }
  for (int64_t le = 0; le < local_experts_; ++le) expert_offset_[le + 1] += expert_offset_[le];
  grouped_of_recv_.resize(expert_offset_.back());
  std::vector<int64_t> fill(expert_offset_.begin(), expert_offset_.end() - 1);
  int64_t i = 0;
  for (int src = 0; src < G; ++src)
    for (int64_t le = 0; le < local_experts_; ++le)
      for (auto n = static_cast<int64_t>(recv_counts[src * local_experts_ + le]); n > 0; --n)
        grouped_of_recv_[i++] = fill[le]++;
}

void ExpertDispatch::dispatch(const float* slot_rows, float* grouped, int64_t d) const {
  const auto n_send = static_cast<int64_t>(send_order_.size());
  Buffer<float> send(n_send * d), recv(grouped_of_recv_.size() * d);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n_send; ++i)
    std::memcpy(send.data() + i * d, slot_rows + send_order_[i] * d, sizeof(float) * d);
  if (group_) {
    std::vector<int64_t> sc(send_rows_), rc(recv_rows_);
    for (auto& c : sc) c *= d;
    for (auto& c : rc) c *= d;
    group_->all_to_all_v(send.data(), sc, recv.data(), rc);
  } else {
    recv.swap(send);
  }
  const auto n_recv = static_cast<int64_t>(grouped_of_recv_.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n_recv; ++i)
    std::memcpy(grouped + grouped_of_recv_[i] * d, recv.data() + i * d, sizeof(float) * d);
}

void ExpertDispatch::combine(const float* grouped, float* slot_rows, int64_t d) const {
  const auto n_recv = static_cast<int64_t>(grouped_of_recv_.size());
  Buffer<float> back(n_recv * d), mine(send_order_.size() * d);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n_recv; ++i)
    std::memcpy(back.data() + i * d, grouped + grouped_of_recv_[i] * d, sizeof(float) * d);
  if (group_) {
    std::vector<int64_t> sc(recv_rows_), rc(send_rows_);
    for (auto& c : sc) c *= d;
    for (auto& c : rc) c *= d;
    group_->all_to_all_v(back.data(), sc, mine.data(), rc);
  } else {
    mine.swap(back);
  }
  const auto n_send = static_cast<int64_t>(send_order_.size());
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n_send; ++i)
    std::memcpy(slot_rows + send_order_[i] * d, mine.data() + i * d, sizeof(float) * d);
}

}  // namespace flywheel
