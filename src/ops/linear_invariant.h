// Batch-invariant linear layer: y[n, out] = x[n, in] W[out, in]^T (Hugging Face weight layout),
// where every output element is computed by the same sequence of float operations whatever n is,
// whichever other rows share the call, however many threads run and however the loops are blocked.
// Serving batches different sequences together at every step; with OpenBLAS the reduction order of
// a row depends on the batch size (different kernels / blockings), so a token's logits, hence its
// log-probability, would depend on its neighbours. Idea and motivation: He et al., Thinking
// Machines Lab 2025, "Defeating Nondeterminism in LLM Inference" (batch-invariant kernels).
//
// The rule, for y[i][j] = sum_k x[i][k] W[j][k]  (K = in):
//   16 lane accumulators a[0..15] = +0;  for chunk c = 0 .. ceil(K/16)-1, for lane l:
//     a[l] = fma(x[i][16c + l], W[j][16c + l], a[l])      (elements past K read as 0: a[l] unchanged)
//   then a fixed pairwise tree: a[l] += a[l + 8] (l < 8), a[l] += a[l + 4] (l < 4), a[l] += a[l + 2]
//   (l < 2), y = a[0] + a[1].
// Each step is one IEEE-754 operation (fma rounds once), so the result depends only on K and the
// data -- not on the ISA either: the AVX-512, AVX2+FMA and scalar std::fma paths give the same bits.
#pragma once

#include <cstdint>

namespace flywheel {
struct BFloat16;
}

namespace flywheel::ops {

// y[n, out] = x[n, in] W[out, in]^T (overwrites y), batch-invariant as described above.
// OpenMP over blocks of rows and columns only.
void linear_forward_invariant(const float* x, const float* weight, float* y, int64_t n, int64_t in, int64_t out);
// The same with bf16 weights, widened to fp32 as they are loaded (exact): bit-identical to the fp32
// call on the widened values, so a bf16 replica needs no fp32 copy of its weights.
void linear_forward_invariant(const float* x, const BFloat16* weight, float* y, int64_t n, int64_t in, int64_t out);


}  // namespace flywheel::ops
