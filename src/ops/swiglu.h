// SwiGLU gating (Shazeer 2020): h = silu(g) * u, silu(g) = g * sigmoid(g), elementwise over n values.
#pragma once

#include <cstdint>

namespace flywheel::ops {

template <typename T>
void swiglu_forward(const T* gate, const T* up, T* out, int64_t n);

// dgate = dout * u * silu'(g), silu'(g) = s * (1 + g * (1 - s)) with s = sigmoid(g); dup = dout * silu(g).
// dgate/dup may alias gate/up (they are read before being written, element by element).
template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dout, T* dgate, T* dup, int64_t n);

}  // namespace flywheel::ops
