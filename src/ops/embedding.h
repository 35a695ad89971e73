// Token embedding lookup: out[n, d] = table[token[n], :].
#pragma once

#include <cstdint>

namespace flywheel::ops {

template <typename T>
void embedding_forward(const T* table, const int32_t* tokens, T* out, int64_t n, int64_t d, int64_t vocab);

// dtable[token[r], :] += dout[r, :]. Threads split the d columns, so every row of dtable is summed
// in token order by one thread: deterministic without atomics.
template <typename T>
void embedding_backward(const int32_t* tokens, const T* dout, T* dtable, int64_t n, int64_t d);

}  // namespace flywheel::ops
