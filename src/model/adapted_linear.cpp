#include "model/adapted_linear.h"

#include <algorithm>

#include "core/buffer.h"

namespace flywheel {
namespace {

// y[n, out] += s * (x A^T) B^T, with u = x A^T kept in `u` [n, rank].
void add_adapter(Backend& backend, LinearKernel kernel, const float* x, const LoraAdapter& lora, float* y,
                 Buffer<float>& u, int64_t n, int64_t in, int64_t out) {
  const int64_t r = lora.rank();
  u.resize(n * r);
  Buffer<float> v(n * out);
  backend.linear(kernel, x, lora.a, u.data(), n, in, r);
  backend.linear(kernel, u.data(), lora.b, v.data(), n, r, out);
  backend.scale_in_place(v.data(), n * out, lora.scale);
  backend.add_in_place(y, v.data(), n * out);
}

}  // namespace

void adapted_linear(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                    const LoraAdapter& lora, float* y, int64_t n, int64_t in, int64_t out) {
  backend.linear(kernel, x, weight, y, n, in, out);
  if (!lora.active()) return;
  Buffer<float> u;
  add_adapter(backend, kernel, x, lora, y, u, n, in, out);
}

void adapted_linear_residual(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                             const LoraAdapter& lora, const float* residual, float* y, int64_t n, int64_t in,
                             int64_t out) {
  backend.linear_residual(kernel, x, weight, residual, y, n, in, out);
  if (!lora.active()) return;
  Buffer<float> u;
  add_adapter(backend, kernel, x, lora, y, u, n, in, out);
}

void adapted_linear_backward(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                             const LoraAdapter& lora, const LoraGrads& lora_grads, const float* dy, float* dx,
                             float* dweight, int64_t n, int64_t in, int64_t out, bool accumulate_dx) {
  backend.linear_backward(x, weight.data<float>(), dy, dx, dweight, n, in, out, accumulate_dx);
  if (!lora.active()) return;
  const int64_t r = lora.rank();
  Buffer<float> u(n * r), du(n * r), scaled_dy(n * out);
  backend.linear(kernel, x, lora.a, u.data(), n, in, r);
  // d(s v) / dv = s: the adapter's output gradient is s dy.
  std::copy(dy, dy + n * out, scaled_dy.data());
  backend.scale_in_place(scaled_dy.data(), n * out, lora.scale);
  backend.linear_backward(u.data(), lora.b.data<float>(), scaled_dy.data(), du.data(), lora_grads.b, n, r, out,
                          false);
  backend.linear_backward(x, lora.a.data<float>(), du.data(), dx, lora_grads.a, n, in, r, true);
}

}  // namespace flywheel
