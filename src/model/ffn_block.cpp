#include "model/ffn_block.h"

#include "ops/gemm.h"
#include "ops/linear_invariant.h"
#include "ops/swiglu.h"

namespace flywheel {

void SwiGluActivations::resize(int64_t n, int64_t hidden) {
  const auto size = static_cast<size_t>(n * hidden);
  gate.resize(size);
  up.resize(size);
  act.resize(size);
}

void swiglu_ffn_forward(const SwiGluWeights& w, const float* x, float* y, int64_t n, int64_t d, int64_t hidden,
                        SwiGluActivations& saved, bool invariant) {
  saved.resize(n, hidden);
  ops::linear_forward_select(invariant, x, w.gate, saved.gate.data(), n, d, hidden);
  ops::linear_forward_select(invariant, x, w.up, saved.up.data(), n, d, hidden);
  ops::swiglu_forward(saved.gate.data(), saved.up.data(), saved.act.data(), n * hidden);
  ops::linear_forward_select(invariant, saved.act.data(), w.down, y, n, hidden, d);
}

void swiglu_ffn_backward(const SwiGluWeights& w, const SwiGluGrads& g, const float* x, const float* dy, float* dx,
                         int64_t n, int64_t d, int64_t hidden, SwiGluActivations& saved, bool accumulate_dx) {
  // d act = dy * down, written into a scratch that the swiglu backward then reads.
  Buffer<float> dact(static_cast<size_t>(n * hidden));
  ops::linear_backward(saved.act.data(), w.down, dy, dact.data(), g.down, n, hidden, d);
  // dgate / dup overwrite gate / up in place (swiglu_backward reads each element before writing it).
  float* dgate = saved.gate.data();
  float* dup = saved.up.data();
  ops::swiglu_backward(saved.gate.data(), saved.up.data(), dact.data(), dgate, dup, n * hidden);
  ops::linear_backward(x, w.gate, dgate, dx, g.gate, n, d, hidden, accumulate_dx);
  ops::linear_backward(x, w.up, dup, dx, g.up, n, d, hidden, true);
}

}  // namespace flywheel
