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
  float* weight = nullptr;             // row-major local data, (row_end-row_begin) * prod(global_shape[1:]) floats
  float* adam_m = nullptr;             // same layout; nullptr: this slice has no moment (not saved / not loaded)
  float* adam_v = nullptr;
};

// The three arrays a slice can carry, in file order; group names "weight", "adam_m", "adam_v".
enum class SliceArray { kWeight = 0, kAdamM = 1, kAdamV = 2 };
inline constexpr SliceArray kSliceArrays[] = {SliceArray::kWeight, SliceArray::kAdamM, SliceArray::kAdamV};
const char* slice_array_group(SliceArray array);
float* slice_array_data(const TensorSlice& slice, SliceArray array);

// Elements per row: prod(global_shape[1:]) (1 for a vector).
int64_t row_elements(const std::vector<int64_t>& global_shape);
int64_t slice_rows(const TensorSlice& slice);

// Why this slice cannot be saved or loaded (empty when it is fine): a name HDF5 cannot hold, a shape
// with a dimension < 1, rows outside [0, global_shape[0]], or a null weight for a non-empty range.
std::string slice_problem(const TensorSlice& slice);

}  // namespace flywheel
