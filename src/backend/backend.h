// The compute backend: every op the model, the optimizer and the decode engine run goes through
// this interface, so a device is one implementation of it (ggml's ggml_backend_i is the model).
//
//   CpuBackend (cpu_backend.cpp)        ops/ (OpenBLAS + OpenMP): the reference, float64-checked
//   ProfilingBackend (profiling_backend.h)  times every op of another backend (train_step_bench --profile)
//   a CUDA backend (issue: the GPU backend) plugs in here and into tests/unit/test_backend_ops.cpp
//
// Conventions. Activations are fp32 arrays in the backend's device memory, row-major, passed as
// pointers with their sizes (as BLAS and kernel launches take them). Weights the forward pass reads
// are Tensors, because a serving replica may hold them in bf16: linear, rmsnorm and embedding accept
// f32 or bf16 weights (converted to fp32 exactly as they are read); everything on the backward path
// takes fp32. Results overwrite their outputs unless the name says accumulate. Every op is
// deterministic run to run for a fixed thread count; ops whose reduction order could depend on the
// batch say so (LinearKernel::kBlas).
// A null weight-gradient output (dweight of linear_backward and rmsnorm_backward) skips that gradient:
// a frozen weight (a LoRA base) costs only its input gradient.
#pragma once

#include <cstdint>
#include <string>

#include "core/tensor.h"
#include "ops/adamw.h"
#include "ops/attention.h"
#include "ops/rope.h"

namespace flywheel {

// Matrix products of the forward pass (ModelConfig::forward_kernels).
enum class LinearKernel {
  kBlas,       // the backend's GEMM library (OpenBLAS here): fastest, but a row's bits depend on the batch
  kInvariant,  // batch-invariant: a fixed reduction order per output element (ops/linear_invariant.h)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;  // "cpu"
  virtual Device device() const = 0;

  // ---- matrix products; weights W[out, in] in Hugging Face layout --------------------------------
  // y[n, out] = x[n, in] W^T. W is f32, or bf16 with kInvariant (the decode path of bf16 replicas).
  virtual void linear(LinearKernel kernel, const float* x, const Tensor& weight, float* y, int64_t n, int64_t in,
                      int64_t out) = 0;
  // y[n, out] = residual[n, out] + x W^T. kBlas lets the GEMM accumulate onto the residual (beta = 1);
  // kInvariant rounds the product first, then adds once per element, so a row's bits stay batch-free.
  // y may alias neither input.
  virtual void linear_residual(LinearKernel kernel, const float* x, const Tensor& weight, const float* residual,
                               float* y, int64_t n, int64_t in, int64_t out) = 0;
  // dx[n, in] = (or += with accumulate_dx) dy[n, out] W;  dW[out, in] += dy^T x.
  virtual void linear_backward(const float* x, const float* weight, const float* dy, float* dx, float* dweight,
                               int64_t n, int64_t in, int64_t out, bool accumulate_dx) = 0;

  // ---- normalisation, positions, attention (ops/rmsnorm.h, ops/rope.h, ops/attention.h) -----------
  virtual void rmsnorm(const float* x, const Tensor& weight, float* y, float* rstd, int64_t n, int64_t d,
                       double eps) = 0;
  virtual void rmsnorm_backward(const float* x, const float* weight, const float* rstd, const float* dy, float* dx,
                                float* dweight, int64_t n, int64_t d) = 0;
  // In place on x[rows, heads, head_dim]; row r sits at positions[r]. inverse: the backward rotation.
  virtual void rope(const ops::RopeTable<float>& table, float* x, int64_t rows, int64_t heads,
                    const int64_t* positions, bool inverse) = 0;
  virtual void attention(const ops::AttentionShape& shape, const float* q, const float* k, const float* v,
                         float* out, float* lse) = 0;
  virtual void attention_backward(const ops::AttentionShape& shape, const float* q, const float* k, const float* v,
                                  const float* out, const float* lse, const float* dout, float* dq, float* dk,
                                  float* dv) = 0;

  // ---- elementwise -------------------------------------------------------------------------------
  virtual void swiglu(const float* gate, const float* up, float* out, int64_t n) = 0;
  // dgate/dup may alias gate/up.
  virtual void swiglu_backward(const float* gate, const float* up, const float* dout, float* dgate, float* dup,
                               int64_t n) = 0;
  virtual void add(const float* a, const float* b, float* out, int64_t n) = 0;  // out = a + b
  virtual void add_in_place(float* x, const float* y, int64_t n) = 0;         // x += y
  virtual void scale_in_place(float* x, int64_t n, float factor) = 0;         // x *= factor
  virtual void fill(float* x, int64_t n, float value) = 0;                    // x = value
  // y[r, :] += bias[:] for r < rows (bias f32 or bf16, d elements): a linear layer's bias.
  virtual void add_bias(float* y, const Tensor& bias, int64_t rows, int64_t d) = 0;
  // dbias[:] += sum_r dy[r, :], each column summed in row order (thread-count independent).
  virtual void bias_backward(const float* dy, float* dbias, int64_t rows, int64_t d) = 0;

  // ---- embedding and the LM head's loss ----------------------------------------------------------
  // out[n, d] = table[tokens[i], :] for a table of `vocab` rows (f32 or bf16).
  virtual void embedding(const Tensor& table, const int32_t* tokens, float* out, int64_t n, int64_t d,
                         int64_t vocab) = 0;
  virtual void embedding_backward(const int32_t* tokens, const float* dout, float* dtable, int64_t n, int64_t d) = 0;
  // ops/cross_entropy.h: returns sum_r weight_r * -logp_r; with compute_grad logits become dlogits.
  virtual double cross_entropy(float* logits, const int32_t* targets, const float* weights, int64_t n, int64_t vocab,
                               bool compute_grad, float* target_logprob) = 0;

  // ---- mixture of experts ------------------------------------------------------------------------
  virtual void router(const float* logits, float* probs, int32_t* expert, float* weight, int64_t n, int64_t experts,
                      int64_t top_k, bool normalize) = 0;
  virtual void router_backward(const float* probs, const int32_t* expert, const float* weight, const float* dweight,
                               const float* dprobs_extra, float* dlogits, int64_t n, int64_t experts, int64_t top_k,
                               bool normalize) = 0;
  // dst[i, :] = src[index[i], :] for i < rows (rows of width d).
  virtual void gather_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) = 0;
  // dst[index[i], :] = src[i, :] for i < rows.
  virtual void scatter_rows(const float* src, const int64_t* index, float* dst, int64_t rows, int64_t d) = 0;
  // y[t, :] += sum_j weight[t, j] * slots[t * k + j, :], slots in order j = 0 .. k-1 (weight null: 1).
  virtual void combine_slots(const float* slots, const float* weight, float* y, int64_t n, int64_t k,
                             int64_t d) = 0;
  // The backward of combine_slots for its slots and weights, given dy[n, d]:
  // dslots[t * k + j] = weight[t, j] * dy[t];  dweight[t, j] = dy[t] . slots[t * k + j].
  virtual void combine_slots_backward(const float* slots, const float* weight, const float* dy, float* dslots,
                                      float* dweight, int64_t n, int64_t k, int64_t d) = 0;
  // Load-balancing statistics of n tokens routed to k of E experts, in token order (deterministic):
  // stats[e] = slots routed to e, stats[E + e] = sum_t probs[t, e], stats[2E] = n.
  virtual void routing_statistics(const int32_t* expert_of_slot, const float* probs, int64_t n, int64_t experts,
                                  int64_t top_k, double* stats) = 0;
  // out[r, :] = row[:] for r < rows (rows of width d).
  virtual void broadcast_row(const float* row, float* out, int64_t rows, int64_t d) = 0;

  // ---- optimizer ---------------------------------------------------------------------------------
  virtual void adamw(float* param, const float* grad, float* m, float* v, int64_t n, const ops::AdamWHyper& hyper) = 0;
  // Sum of squares accumulated in double in a thread-count-independent order.
  virtual double sum_of_squares(const float* x, int64_t n) = 0;
};

// The CPU backend (one per process; its ops use the rank's OpenMP threads).
Backend& cpu_backend();

// Every backend this build registered, the CPU one first (tests/unit/test_backend_ops.cpp runs each).
std::vector<Backend*> registered_backends();

}  // namespace flywheel
