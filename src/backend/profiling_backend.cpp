#include "backend/profiling_backend.h"

#include <algorithm>
#include <iterator>

namespace flywheel {
namespace {

// The names times() reports, indexed by ProfilingBackend::Op: the Backend methods' names.
constexpr const char* kOpNames[] = {
    "linear", "linear_residual", "linear_backward",
    "rmsnorm", "rmsnorm_backward", "rope", "attention", "attention_backward",
    "swiglu", "swiglu_backward", "add", "add_in_place", "scale_in_place", "fill", "add_bias", "bias_backward",
    "embedding", "embedding_backward", "cross_entropy",
    "router", "router_backward", "gather_rows", "scatter_rows", "combine_slots", "combine_slots_backward",
    "routing_statistics", "broadcast_row",
    "adamw", "sum_of_squares",
};

// Model FLOPs of the matrix ops (the header says what is counted): 2 per multiply-add.
double linear_flops(int64_t n, int64_t in, int64_t out) {
  return 2.0 * static_cast<double>(n) * static_cast<double>(in) * static_cast<double>(out);
}

// Query i sits at position q_offset + i and sees keys 0 .. q_offset + i (ops/attention.h); per visible
// pair and head, QK^T and PV are head_dim multiply-adds each.
double attention_flops(const ops::AttentionShape& s) {
  const double seq = static_cast<double>(s.seq);
  const double pairs = seq * static_cast<double>(s.q_offset) + seq * (seq + 1.0) / 2.0;
  return 4.0 * static_cast<double>(s.batch) * static_cast<double>(s.n_heads) * static_cast<double>(s.head_dim) *
         pairs;
}

}  // namespace

std::vector<ProfilingBackend::OpTime> ProfilingBackend::times() const {
  static_assert(std::size(kOpNames) == kOps, "one name per ProfilingBackend::Op");
  std::vector<OpTime> out;
  for (size_t i = 0; i < kOps; ++i) {
    const Tally& tally = tallies_[i];
    if (tally.calls > 0)
      out.push_back({kOpNames[i], tally.calls, std::chrono::duration<double>(tally.elapsed).count(), tally.flops});
  }
  // Slowest first; equal times (a coarse clock) in name order, so the listing is reproducible.
  std::sort(out.begin(), out.end(), [](const OpTime& a, const OpTime& b) {
    return a.seconds != b.seconds ? a.seconds > b.seconds : a.op < b.op;
  });
  return out;
}

void ProfilingBackend::reset() { tallies_.fill(Tally{}); }

void ProfilingBackend::linear(LinearKernel kernel, const float* x, const Tensor& weight, float* y, int64_t n,
                              int64_t in, int64_t out) {
  const auto timing = timer(Op::kLinear, linear_flops(n, in, out));
  inner_.linear(kernel, x, weight, y, n, in, out);
}

void ProfilingBackend::linear_residual(LinearKernel kernel, const float* x, const Tensor& weight,
                                       const float* residual, float* y, int64_t n, int64_t in, int64_t out) {
  const auto timing = timer(Op::kLinearResidual, linear_flops(n, in, out));
  inner_.linear_residual(kernel, x, weight, residual, y, n, in, out);
}

void ProfilingBackend::linear_backward(const float* x, const float* weight, const float* dy, float* dx,
                                       float* dweight, int64_t n, int64_t in, int64_t out, bool accumulate_dx) {
  const int products = (dx != nullptr) + (dweight != nullptr);  // ops/gemm.cpp skips a null output
  const auto timing = timer(Op::kLinearBackward, products * linear_flops(n, in, out));
  inner_.linear_backward(x, weight, dy, dx, dweight, n, in, out, accumulate_dx);
}

void ProfilingBackend::rmsnorm(const float* x, const Tensor& weight, float* y, float* rstd, int64_t n, int64_t d,
                               double eps) {
  const auto timing = timer(Op::kRmsnorm);
  inner_.rmsnorm(x, weight, y, rstd, n, d, eps);
}

void ProfilingBackend::rmsnorm_backward(const float* x, const float* weight, const float* rstd, const float* dy,
                                        float* dx, float* dweight, int64_t n, int64_t d) {
  const auto timing = timer(Op::kRmsnormBackward);
  inner_.rmsnorm_backward(x, weight, rstd, dy, dx, dweight, n, d);
}

void ProfilingBackend::rope(const ops::RopeTable<float>& table, float* x, int64_t rows, int64_t heads,
                            const int64_t* positions, bool inverse) {
  const auto timing = timer(Op::kRope);
  inner_.rope(table, x, rows, heads, positions, inverse);
}

void ProfilingBackend::attention(const ops::AttentionShape& shape, const float* q, const float* k, const float* v,
                                 float* out, float* lse) {
  const auto timing = timer(Op::kAttention, attention_flops(shape));
  inner_.attention(shape, q, k, v, out, lse);
}

void ProfilingBackend::attention_backward(const ops::AttentionShape& shape, const float* q, const float* k,
                                          const float* v, const float* out, const float* lse, const float* dout,
                                          float* dq, float* dk, float* dv) {
  const auto timing = timer(Op::kAttentionBackward, 2.0 * attention_flops(shape));
  inner_.attention_backward(shape, q, k, v, out, lse, dout, dq, dk, dv);
}

void ProfilingBackend::swiglu(const float* gate, const float* up, float* out, int64_t n) {
  const auto timing = timer(Op::kSwiglu);
  inner_.swiglu(gate, up, out, n);
}

void ProfilingBackend::swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate,
                                       float* dup, int64_t n) {
  const auto timing = timer(Op::kSwigluBackward);
  inner_.swiglu_backward(gate, up, dout, dgate, dup, n);
}

void ProfilingBackend::add(const float* a, const float* b, float* out, int64_t n) {
  const auto timing = timer(Op::kAdd);
  inner_.add(a, b, out, n);
}

void ProfilingBackend::add_in_place(float* x, const float* y, int64_t n) {
  const auto timing = timer(Op::kAddInPlace);
  inner_.add_in_place(x, y, n);
}

void ProfilingBackend::scale_in_place(float* x, int64_t n, float factor) {
  const auto timing = timer(Op::kScaleInPlace);
  inner_.scale_in_place(x, n, factor);
}

void ProfilingBackend::fill(float* x, int64_t n, float value) {
  const auto timing = timer(Op::kFill);
  inner_.fill(x, n, value);
}

void ProfilingBackend::add_bias(float* y, const Tensor& bias, int64_t rows, int64_t d) {
  const auto timing = timer(Op::kAddBias);
  inner_.add_bias(y, bias, rows, d);
}

void ProfilingBackend::bias_backward(const float* dy, float* dbias, int64_t rows, int64_t d) {
  const auto timing = timer(Op::kBiasBackward);
  inner_.bias_backward(dy, dbias, rows, d);
}

void ProfilingBackend::embedding(const Tensor& table, const int32_t* tokens, float* out, int64_t n, int64_t d,
                                 int64_t vocab) {
  const auto timing = timer(Op::kEmbedding);
  inner_.embedding(table, tokens, out, n, d, vocab);
}

void ProfilingBackend::embedding_backward(const int32_t* tokens, const float* dout, float* dtable, int64_t n,
                                          int64_t d) {
  const auto timing = timer(Op::kEmbeddingBackward);
  inner_.embedding_backward(tokens, dout, dtable, n, d);
}

double ProfilingBackend::cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t n,
                                       int64_t vocab, bool compute_grad, float* target_logprob) {
  const auto timing = timer(Op::kCrossEntropy);
  return inner_.cross_entropy(logits, targets, weights, n, vocab, compute_grad, target_logprob);
}

void ProfilingBackend::router(const float* logits, float* probs, int32_t* expert, float* weight, int64_t n,
                              int64_t experts, int64_t top_k, bool normalize) {
  const auto timing = timer(Op::kRouter);
  inner_.router(logits, probs, expert, weight, n, experts, top_k, normalize);
}

void ProfilingBackend::router_backward(const float* probs, const int32_t* expert, const float* weight,
                                       const float* dweight, const float* dprobs_extra, float* dlogits, int64_t n,
                                       int64_t experts, int64_t top_k, bool normalize) {
  const auto timing = timer(Op::kRouterBackward);
  inner_.router_backward(probs, expert, weight, dweight, dprobs_extra, dlogits, n, experts, top_k, normalize);
}

void ProfilingBackend::gather_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) {
  const auto timing = timer(Op::kGatherRows);
  inner_.gather_rows(src, index, dst, rows, d);
}

void ProfilingBackend::scatter_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) {
  const auto timing = timer(Op::kScatterRows);
  inner_.scatter_rows(src, index, dst, rows, d);
}

void ProfilingBackend::combine_slots(const float* slots, const float* weight, float* y, int64_t n, int64_t k,
                                     int64_t d) {
  const auto timing = timer(Op::kCombineSlots);
  inner_.combine_slots(slots, weight, y, n, k, d);
}

void ProfilingBackend::combine_slots_backward(const float* slots, const float* weight, const float* dy,
                                              float* dslots, float* dweight, int64_t n, int64_t k, int64_t d) {
  const auto timing = timer(Op::kCombineSlotsBackward);
  inner_.combine_slots_backward(slots, weight, dy, dslots, dweight, n, k, d);
}

void ProfilingBackend::routing_statistics(const int32_t* expert_of_slot, const float* probs, int64_t n,
                                          int64_t experts, int64_t top_k, double* stats) {
  const auto timing = timer(Op::kRoutingStatistics);
  inner_.routing_statistics(expert_of_slot, probs, n, experts, top_k, stats);
}

void ProfilingBackend::broadcast_row(const float* row, float* out, int64_t rows, int64_t d) {
  const auto timing = timer(Op::kBroadcastRow);
  inner_.broadcast_row(row, out, rows, d);
}

void ProfilingBackend::adamw(float* param, const float* grad, float* m, float* v, int64_t n,
                             const ops::AdamWHyper& hyper) {
  const auto timing = timer(Op::kAdamw);
  inner_.adamw(param, grad, m, v, n, hyper);
}

double ProfilingBackend::sum_of_squares(const float* x, int64_t n) {
  const auto timing = timer(Op::kSumOfSquares);
  return inner_.sum_of_squares(x, n);
}

}  // namespace flywheel
