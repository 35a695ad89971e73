#include "ops/embedding.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace flywheel::ops {

template <typename T>
void embedding_forward(const T* table, const int32_t* tokens, T* out, int64_t n, int64_t d, int64_t vocab) {
  for (int64_t r = 0; r < n; ++r)
    FW_CHECK(tokens[r] >= 0 && tokens[r] < vocab, "token id ", tokens[r], " at position ", r,
             " is outside the vocabulary [0, ", vocab, ")");
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) std::memcpy(out + r * d, table + tokens[r] * d, sizeof(T) * d);
}

template <typename T>
void embedding_backward(const int32_t* tokens, const T* dout, T* dtable, int64_t n, int64_t d) {
#pragma omp parallel
  {
    const int threads = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t begin = d * tid / threads, end = d * (tid + 1) / threads;
    for (int64_t r = 0; r < n; ++r) {
      T* dst = dtable + tokens[r] * d;
      const T* src = dout + r * d;
      for (int64_t i = begin; i < end; ++i) dst[i] += src[i];
    }
  }
}

template void embedding_forward<float>(const float*, const int32_t*, float*, int64_t, int64_t, int64_t);
template void embedding_forward<double>(const double*, const int32_t*, double*, int64_t, int64_t, int64_t);
template void embedding_backward<float>(const int32_t*, const float*, float*, int64_t, int64_t);
template void embedding_backward<double>(const int32_t*, const double*, double*, int64_t, int64_t);

}  // namespace flywheel::ops
