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
  adapted_linear(backend, kernel, x, w.gate, w.gate_lora, saved.gate.data(), n, d, hidden);
  adapted_linear(backend, kernel, x, w.up, w.up_lora, saved.up.data(), n, d, hidden);
  backend.swiglu(saved.gate.data(), saved.up.data(), saved.act.data(), n * hidden);
  adapted_linear(backend, kernel, saved.act.data(), w.down, w.down_lora, y, n, hidden, d);
}

void swiglu_ffn_backward(Backend& backend, LinearKernel kernel, const SwiGluWeights& w, const SwiGluGrads& g,
                         const float* x, const float* dy, float* dx, int64_t n, int64_t d, int64_t hidden,
                         SwiGluActivations& saved, bool accumulate_dx) {
  // d act = dy * down, written into a scratch that the swiglu backward then reads.
  Buffer<float> dact(static_cast<size_t>(n * hidden));
  adapted_linear_backward(backend, kernel, saved.act.data(), w.down, w.down_lora, g.down_lora, dy, dact.data(), g.down,
                          n, hidden, d, false);
  // dgate / dup overwrite gate / up in place (swiglu_backward reads each element before writing it).
  float* dgate = saved.gate.data();
  float* dup = saved.up.data();
  backend.swiglu_backward(saved.gate.data(), saved.up.data(), dact.data(), dgate, dup, n * hidden);
  adapted_linear_backward(backend, kernel, x, w.gate, w.gate_lora, g.gate_lora, dgate, dx, g.gate, n, d, hidden,
                          accumulate_dx);
  adapted_linear_backward(backend, kernel, x, w.up, w.up_lora, g.up_lora, dup, dx, g.up, n, d, hidden, true);
}

}  // namespace flywheel
