// A decorator that times every op of another backend: it forwards each call unchanged (same
// arguments, same results, bit for bit) and adds the call count and the wall time of the forwarded
// call to that op's tally. bench/train_step_bench --profile runs the real training step through it,
// so the profile measures the code path that trains, not a hand-copied replay of it.
//
// The matrix ops also tally their model FLOPs, computed from the call's arguments, so a profile can
// state a rate: linear and linear_residual 2 n in out (the residual add is not counted),
// linear_backward 2 n in out for each of dx and dW it computes, attention 4 head_dim per visible
// (query, key) pair and head -- QK^T and PV over the causal part only -- and attention_backward
// twice that (its recomputation of the scores is work the kernel chooses to do, not model FLOPs).
// Every other op tallies 0 FLOPs.
//
// Cost per op: one steady_clock read pair and three additions to a fixed array slot (no lookup, no
// allocation), plus a few multiplications, outside the timed interval, for the FLOP count of the
// matrix ops. Times are wall seconds on the calling thread, which for the CPU backend includes the
// op's OpenMP team; an asynchronous backend (a GPU stream) would be timed at its launches unless its
// ops synchronise. Like the backends it wraps, it expects one calling thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace flywheel {

class ProfilingBackend final : public Backend {
 public:
  struct OpTime {
    std::string op;  // the Backend method's name: "linear", "attention_backward", ...
    int64_t calls;
    double seconds;  // wall time summed over the calls
    double flops;    // model FLOPs summed over the calls (see above); 0 for ops that count none
  };

  explicit ProfilingBackend(Backend& inner) : inner_(inner) {}

  std::string name() const override { return "profiling(" + inner_.name() + ")"; }
  Device device() const override { return inner_.device(); }

  // The ops called since construction or the last reset(), slowest (most seconds) first.
  std::vector<OpTime> times() const;
  void reset();

  void linear(LinearKernel kernel, const float* x, const Tensor& weight, float* y, int64_t n, int64_t in,
              int64_t out) override;
  void linear_residual(LinearKernel kernel, const float* x, const Tensor& weight, const float* residual, float* y,
                       int64_t n, int64_t in, int64_t out) override;
  void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight, int64_t n,
                       int64_t in, int64_t out, bool accumulate_dx) override;

  void rmsnorm(const float* x, const Tensor& weight, float* y, float* rstd, int64_t n, int64_t d,
               double eps) override;
  void rmsnorm_backward(const float* x, const float* weight, const float* rstd, const float* dy, float* dx,
                        float* dweight, int64_t n, int64_t d) override;
  void rope(const ops::RopeTable<float>& table, float* x, int64_t rows, int64_t heads, const int64_t* positions,
            bool inverse) override;
  void attention(const ops::AttentionShape& shape, const float* q, const float* k, const float* v, float* out,
                 float* lse) override;
  void attention_backward(const ops::AttentionShape& shape, const float* q, const float* k, const float* v,
                          const float* out, const float* lse, const float* dout, float* dq, float* dk,
                          float* dv) override;

  void swiglu(const float* gate, const float* up, float* out, int64_t n) override;
  void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                       int64_t n) override;
  void add(const float* a, const float* b, float* out, int64_t n) override;
  void add_in_place(float* x, const float* y, int64_t n) override;
  void scale_in_place(float* x, int64_t n, float factor) override;
  void fill(float* x, int64_t n, float value) override;
  void add_bias(float* y, const Tensor& bias, int64_t rows, int64_t d) override;
  void bias_backward(const float* dy, float* dbias, int64_t rows, int64_t d) override;

  void embedding(const Tensor& table, const int32_t* tokens, float* out, int64_t n, int64_t d,
                 int64_t vocab) override;
  void embedding_backward(const int32_t* tokens, const float* dout, float* dtable, int64_t n, int64_t d) override;
  double cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t n, int64_t vocab,
                       bool compute_grad, float* target_logprob) override;

  void router(const float* logits, float* probs, int32_t* expert, float* weight, int64_t n, int64_t experts,
              int64_t top_k, bool normalize) override;
  void router_backward(const float* probs, const int32_t* expert, const float* weight, const float* dweight,
                       const float* dprobs_extra, float* dlogits, int64_t n, int64_t experts, int64_t top_k,
                       bool normalize) override;
  void gather_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) override;
  void scatter_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) override;
  void combine_slots(const float* slots, const float* weight, float* y, int64_t n, int64_t k, int64_t d) override;
  void combine_slots_backward(const float* slots, const float* weight, const float* dy, float* dslots,
                              float* dweight, int64_t n, int64_t k, int64_t d) override;
  void routing_statistics(const int32_t* expert_of_slot, const float* probs, int64_t n, int64_t experts,
                          int64_t top_k, double* stats) override;
  void broadcast_row(const float* row, float* out, int64_t rows, int64_t d) override;

  void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const ops::AdamWHyper& hyper) override;
  double sum_of_squares(const float* x, int64_t n) override;

 private:
  using Clock = std::chrono::steady_clock;

  // One slot per Backend op, in declaration order (op_names in the .cpp spells them).
  enum class Op : size_t {
    kLinear, kLinearResidual, kLinearBackward,
    kRmsnorm, kRmsnormBackward, kRope, kAttention, kAttentionBackward,
    kSwiglu, kSwigluBackward, kAdd, kAddInPlace, kScaleInPlace, kFill, kAddBias, kBiasBackward,
    kEmbedding, kEmbeddingBackward, kCrossEntropy,
    kRouter, kRouterBackward, kGatherRows, kScatterRows, kCombineSlots, kCombineSlotsBackward,
    kRoutingStatistics, kBroadcastRow,
    kAdamw, kSumOfSquares,
    kCount,
  };
  static constexpr size_t kOps = static_cast<size_t>(Op::kCount);

  struct Tally {
    int64_t calls = 0;
    Clock::duration elapsed{};
    double flops = 0;
  };

  // Times one forwarded call: reads the clock when made and again when destroyed, which is after the
  // forwarded call has returned (and its result, if any, has been computed).
  class ScopedTimer {
   public:
    ScopedTimer(Tally& tally, double flops) : tally_(tally), flops_(flops), start_(Clock::now()) {}
    ~ScopedTimer() {
      tally_.elapsed += Clock::now() - start_;
      ++tally_.calls;
      tally_.flops += flops_;
    }
    ScopedTimer(const ScopedTimer&) = delete;
    ScopedTimer& operator=(const ScopedTimer&) = delete;

   private:
    Tally& tally_;
    double flops_;
    Clock::time_point start_;
  };

  ScopedTimer timer(Op op, double flops = 0) { return ScopedTimer(tallies_[static_cast<size_t>(op)], flops); }

  Backend& inner_;
  std::array<Tally, kOps> tallies_{};
};

}  // namespace flywheel
