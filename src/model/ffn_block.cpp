#include "model/ffn_block.h"

namespace flywheel {

void SwiGluActivations::resize(int64_t n, int64_t hidden) {
  const auto size = static_cast<size_t>(n * hidden);
  gate.resize(size);
  up.resize(size);
  act.resize(size);
}

void swiglu_ffn_forward(Backend& backend, LinearKernel kernel, const SwiGluWeights& w, const float* x, float* y,
                        int64_t n, int64_t d, int64_t hidden, SwiGluActivations& saved) {
  saved.resize(n, hidden);
  backend.linear(kernel, x, w.gate, saved.gate.data(), n, d, hidden);
  backend.linear(kernel, x, w.up, saved.up.data(), n, d, hidden);
  backend.swiglu(saved.gate.data(), saved.up.data(), saved.act.data(), n * hidden);
  backend.linear(kernel, saved.act.data(), w.down, y, n, hidden, d);
}

void swiglu_ffn_backward(Backend& backend, const SwiGluWeights& w, const SwiGluGrads& g, const float* x,
                         const float* dy, float* dx, int64_t n, int64_t d, int64_t hidden, SwiGluActivations& saved,
                         bool accumulate_dx) {
  // d act = dy * down, written into a scratch that the swiglu backward then reads.
  Buffer<float> dact(static_cast<size_t>(n * hidden));
  backend.linear_backward(saved.act.data(), w.down.data<float>(), dy, dact.data(), g.down, n, hidden, d, false);
  // dgate / dup overwrite gate / up in place (swiglu_backward reads each element before writing it).
  float* dgate = saved.gate.data();
  float* dup = saved.up.data();
  backend.swiglu_backward(saved.gate.data(), saved.up.data(), dact.data(), dgate, dup, n * hidden);
  backend.linear_backward(x, w.gate.data<float>(), dgate, dx, g.gate, n, d, hidden, accumulate_dx);
  backend.linear_backward(x, w.up.data<float>(), dup, dx, g.up, n, d, hidden, true);
}

}  // namespace flywheel
