#include "model/expert_dispatch.h"

#include "core/buffer.h"
#include "core/error.h"

namespace flywheel {

ExpertDispatch::ExpertDispatch(ExpertExchange* exchange, int64_t n_experts, const int32_t* slot_expert,
                               int64_t n_slots)
    : exchange_(exchange && exchange->ranks() > 1 ? exchange : nullptr) {
  const int G = exchange_ ? exchange_->ranks() : 1, me = exchange_ ? exchange_->rank() : 0;
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
  std::vector<int64_t> send_counts(n_experts), recv_counts(n_experts);
  for (int64_t e = 0; e < n_experts; ++e) send_counts[e] = per_expert[e + 1] - per_expert[e];
  send_rows_.assign(G, 0);
  for (int64_t e = 0; e < n_experts; ++e) send_rows_[e / local_experts_] += send_counts[e];
  if (exchange_)
    exchange_->exchange_counts(send_counts.data(), recv_counts.data(), local_experts_);
  else
    recv_counts = send_counts;

  // Receive layout: source-major, then local expert. Grouped layout: local expert, then source.
  recv_rows_.assign(G, 0);
  expert_offset_.assign(local_experts_ + 1, 0);
  for (int src = 0; src < G; ++src)
    for (int64_t le = 0; le < local_experts_; ++le) {
      const int64_t n = recv_counts[src * local_experts_ + le];
      recv_rows_[src] += n;
      expert_offset_[le + 1] += n;
    }
  for (int64_t le = 0; le < local_experts_; ++le) expert_offset_[le + 1] += expert_offset_[le];
  grouped_of_recv_.resize(expert_offset_.back());
  std::vector<int64_t> fill(expert_offset_.begin(), expert_offset_.end() - 1);
  int64_t i = 0;
  for (int src = 0; src < G; ++src)
    for (int64_t le = 0; le < local_experts_; ++le)
      for (int64_t n = recv_counts[src * local_experts_ + le]; n > 0; --n) grouped_of_recv_[i++] = fill[le]++;
}

namespace {
std::vector<int64_t> times(const std::vector<int64_t>& rows, int64_t d) {
  std::vector<int64_t> elements(rows);
  for (auto& c : elements) c *= d;
  return elements;
}
}  // namespace

void ExpertDispatch::dispatch(Backend& backend, const float* slot_rows, float* grouped, int64_t d) const {
  const auto n_send = static_cast<int64_t>(send_order_.size());
  const auto n_recv = static_cast<int64_t>(grouped_of_recv_.size());
  Buffer<float> send(n_send * d), recv(n_recv * d);
  backend.gather_rows(slot_rows, send_order_.data(), send.data(), n_send, d);
  if (exchange_)
    exchange_->exchange_rows(send.data(), times(send_rows_, d), recv.data(), times(recv_rows_, d));
  else
    recv.swap(send);
  backend.scatter_rows(recv.data(), grouped_of_recv_.data(), grouped, n_recv, d);
}

void ExpertDispatch::combine(Backend& backend, const float* grouped, float* slot_rows, int64_t d) const {
  const auto n_send = static_cast<int64_t>(send_order_.size());
  const auto n_recv = static_cast<int64_t>(grouped_of_recv_.size());
  Buffer<float> back(n_recv * d), mine(n_send * d);
  backend.gather_rows(grouped, grouped_of_recv_.data(), back.data(), n_recv, d);
  if (exchange_)
    exchange_->exchange_rows(back.data(), times(recv_rows_, d), mine.data(), times(send_rows_, d));
  else
    mine.swap(back);
  backend.scatter_rows(mine.data(), send_order_.data(), slot_rows, n_send, d);
}

}  // namespace flywheel
