// What one rank holds of one tensor: rows [row_begin, row_end) of dim 0 of the global tensor
// `name`, with its AdamW moments. Checkpoints are written and read in these terms, so a checkpoint
// written on one mesh loads on any other (the reader copies whichever rows overlap).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace flywheel {

struct TensorSlice {
  std::string name;  // global name, e.g. "model.layers.0.mlp.up_proj.weight"
  std::vector<int64_t> global_shape;
  int64_t row_begin = 0, row_end = 0;  // rows [row_begin, row_end) of dim 0 held here
  // The rows held here, [row_end - row_begin, global_shape[1:]...] row-major, in f32 (the dtype of the
  // shard files). An undefined tensor: this slice has no such array (not saved / not loaded).
  Tensor weight, adam_m, adam_v;
};

// A slice over fp32 rows in memory laid out as the slice's rows; null moments: the slice has none.
TensorSlice float_slice(std::string name, std::vector<int64_t> global_shape, int64_t row_begin, int64_t row_end,
                        float* weight, float* adam_m = nullptr, float* adam_v = nullptr);

// The three arrays a slice can carry, in file order; group names "weight", "adam_m", "adam_v".
enum class SliceArray { kWeight = 0, kAdamM = 1, kAdamV = 2 };
inline constexpr SliceArray kSliceArrays[] = {SliceArray::kWeight, SliceArray::kAdamM, SliceArray::kAdamV};
const char* slice_array_group(SliceArray array);
const Tensor& slice_array(const TensorSlice& slice, SliceArray array);

// Elements per row: prod(global_shape[1:]) (1 for a vector).
int64_t row_elements(const std::vector<int64_t>& global_shape);
int64_t slice_rows(const TensorSlice& slice);

// Why this slice cannot be saved or loaded (empty when it is fine): a name HDF5 cannot hold, a shape
// with a dimension < 1, rows outside [0, global_shape[0]], no weight for a non-empty range, or an
// array that is not f32.
std::string slice_problem(const TensorSlice& slice);

}  // namespace flywheel
