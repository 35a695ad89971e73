#include "model/adapted_linear.h"

#include <algorithm>

#include "core/buffer.h"
#include "core/error.h"

namespace flywheel {
namespace {

// y[n, out] += s * (x A^T) B^T (all rows), or the same on lora.rows only (gathered, then added back row by row).
void add_adapter(Backend& backend, LinearKernel kernel, const float* x, const LoraAdapter& lora, float* y, int64_t n,
                 int64_t in, int64_t out) {
  const int64_t r = lora.rank();
  Buffer<float> gathered;
  int64_t m = n;
  if (lora.rows) {
    m = static_cast<int64_t>(lora.rows->size());
    if (m == 0) return;
    gathered.resize(m * in);
    backend.gather_rows(x, lora.rows->data(), gathered.data(), m, in);
    x = gathered.data();
  }
  Buffer<float> u(m * r), v(m * out);
  backend.linear(kernel, x, lora.a, u.data(), m, in, r);
  backend.linear(kernel, u.data(), lora.b, v.data(), m, r, out);
  backend.scale_in_place(v.data(), m * out, lora.scale);
  if (!lora.rows) {
    backend.add_in_place(y, v.data(), n * out);
    return;
  }
  for (int64_t i = 0; i < m; ++i) backend.add_in_place(y + (*lora.rows)[i] * out, v.data() + i * out, out);
}

}  // namespace

void adapted_linear(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                    const LoraAdapters& loras, float* y, int64_t n, int64_t in, int64_t out) {
  backend.linear(kernel, x, weight, y, n, in, out);
  for (const LoraAdapter& lora : loras) add_adapter(backend, kernel, x, lora, y, n, in, out);
}

void adapted_linear_residual(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                             const LoraAdapters& loras, const float* residual, float* y, int64_t n, int64_t in,
                             int64_t out) {
  backend.linear_residual(kernel, x, weight, residual, y, n, in, out);
  for (const LoraAdapter& lora : loras) add_adapter(backend, kernel, x, lora, y, n, in, out);
}

void adapted_linear_backward(Backend& backend, LinearKernel kernel, const float* x, const Tensor& weight,
                             const LoraAdapters& loras, const LoraGrads& lora_grads, const float* dy, float* dx,
                             float* dweight, int64_t n, int64_t in, int64_t out, bool accumulate_dx) {
  backend.linear_backward(x, weight.data<float>(), dy, dx, dweight, n, in, out, accumulate_dx);
  if (loras.empty()) return;
  FW_CHECK(loras.size() == 1 && !loras[0].rows, "adapted_linear_backward: training has one adapter on every row, not ",
           loras.size(), " on row subsets (per-row adapters are for serving)");
  const LoraAdapter& lora = loras[0];
  const int64_t r = lora.rank();
  Buffer<float> u(n * r), du(n * r), scaled_dy(n * out);
  backend.linear(kernel, x, lora.a, u.data(), n, in, r);
  // d(s v) / dv = s: the adapter's output gradient is s dy.
  std::copy(dy, dy + n * out, scaled_dy.data());
  backend.scale_in_place(scaled_dy.data(), n * out, lora.scale);
  backend.linear_backward(u.data(), lora.b.data<float>(), scaled_dy.data(), du.data(), lora_grads.b, n, r, out, false);
  backend.linear_backward(x, lora.a.data<float>(), du.data(), dx, lora_grads.a, n, in, r, true);
}

}  // namespace flywheel
