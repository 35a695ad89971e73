#include "ckpt/tensor_slice.h"

#include "core/error.h"

namespace flywheel {

const char* slice_array_group(SliceArray array) {
  switch (array) {
    case SliceArray::kWeight:
      return "weight";
    case SliceArray::kAdamM:
      return "adam_m";
    case SliceArray::kAdamV:
      return "adam_v";
  }
  return "?";
}

const Tensor& slice_array(const TensorSlice& slice, SliceArray array) {
  switch (array) {
    case SliceArray::kAdamM:
      return slice.adam_m;
    case SliceArray::kAdamV:
      return slice.adam_v;
    case SliceArray::kWeight:
      break;
  }
  return slice.weight;
}

TensorSlice float_slice(std::string name, std::vector<int64_t> global_shape, int64_t row_begin, int64_t row_end,
                        float* weight, float* adam_m, float* adam_v) {
  std::vector<int64_t> local = global_shape;
  if (!local.empty()) local[0] = row_end - row_begin;
  TensorSlice slice{std::move(name), std::move(global_shape), row_begin, row_end, {}, {}, {}};
  if (weight) slice.weight = Tensor::view(weight, local);
  if (adam_m) slice.adam_m = Tensor::view(adam_m, local);
  if (adam_v) slice.adam_v = Tensor::view(adam_v, local);
  return slice;
}

int64_t row_elements(const std::vector<int64_t>& global_shape) {
  int64_t n = 1;
  for (size_t d = 1; d < global_shape.size(); ++d) n *= global_shape[d];
  return n;
}

int64_t slice_rows(const TensorSlice& slice) { return slice.row_end - slice.row_begin; }

std::string slice_problem(const TensorSlice& s) {
  // HDF5 link names: '/' would create nested groups and '.' alone means "this group".
  if (s.name.empty() || s.name.find('/') != std::string::npos || s.name == ".")
    return detail::concat("tensor name '", s.name, "' is not allowed (non-empty, no '/')");
  if (s.global_shape.empty())
    return detail::concat("tensor ", s.name, ": global_shape is empty; checkpoints need at least 1 dimension");
  for (int64_t extent : s.global_shape)
    if (extent < 1)
      return detail::concat("tensor ", s.name, ": global_shape ", shape_text(s.global_shape), " has a dimension < 1");
  if (s.row_begin < 0 || s.row_end < s.row_begin || s.row_end > s.global_shape[0])
    return detail::concat("tensor ", s.name, ": rows [", s.row_begin, ", ", s.row_end, ") are not inside [0, ",
                          s.global_shape[0], ")");
  if (s.row_end > s.row_begin && !s.weight.defined())
    return detail::concat("tensor ", s.name, ": rows [", s.row_begin, ", ", s.row_end, ") but no weight");
  for (SliceArray array : kSliceArrays) {
    const Tensor& t = slice_array(s, array);
    if (!t.defined()) continue;
    if (t.dtype() != DType::kF32)
      return detail::concat("tensor ", s.name, ": ", slice_array_group(array), " is ", dtype_name(t.dtype()),
                            "; checkpoint shards hold f32");
  }
  return {};
}

}  // namespace flywheel
