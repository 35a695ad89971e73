// The CPU backend: the ops of src/ops/ (OpenBLAS sgemm, OpenMP loops, the batch-invariant linear),
// unchanged numerics. bf16 weights (serving replicas) are widened to fp32 as they are read, which is
// exact, so a bf16 replica computes what an fp32 replica holding bf16-rounded values would.
#pragma once

#include "backend/backend.h"

namespace flywheel {

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  Device device() const override { return Device::kHost; }

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
};

}  // namespace flywheel
