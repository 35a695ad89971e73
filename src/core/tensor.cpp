#include "core/tensor.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace flywheel {

size_t dtype_bytes(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kI32: return 4;
    case DType::kI64: return 8;
    case DType::kF64: return 8;
    case DType::kU8: return 1;
  }
  FW_THROW("unknown dtype ", static_cast<int>(dtype));
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "f32";
    case DType::kBF16: return "bf16";
    case DType::kF16: return "f16";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kF64: return "f64";
    case DType::kU8: return "u8";
  }
  return "?";
}

DType parse_dtype(const std::string& text) {
  for (DType d : {DType::kF32, DType::kBF16, DType::kF16, DType::kI32, DType::kI64, DType::kF64, DType::kU8})
    if (text == dtype_name(d)) return d;
  FW_THROW("unknown dtype '", text, "'; allowed: f32, bf16, f16, i32, i64, f64, u8");
}

const char* device_name(Device device) { return device == Device::kHost ? "host" : "?"; }

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    FW_CHECK(d >= 0, "tensor shape ", shape_text(shape), " has a negative dimension");
    n *= d;
  }
  return n;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

Tensor Tensor::empty(DType dtype, std::vector<int64_t> shape, Device device) {
  Tensor t;
  t.dtype_ = dtype;
  t.device_ = device;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  const size_t bytes = std::max<size_t>(t.nbytes(), 1);
  void* memory = ::operator new(bytes, std::align_val_t(64));
  t.storage_ = std::shared_ptr<void>(memory, [](void* p) { ::operator delete(p, std::align_val_t(64)); });
  t.data_ = memory;
  t.defined_ = true;
  return t;
}

Tensor Tensor::zeros(DType dtype, std::vector<int64_t> shape, Device device) {
  Tensor t = empty(dtype, std::move(shape), device);
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::view(void* data, DType dtype, std::vector<int64_t> shape, Device device) {
  Tensor t;
  t.dtype_ = dtype;
  t.device_ = device;
  t.numel_ = shape_numel(shape);
  t.shape_ = std::move(shape);
  FW_CHECK(data != nullptr || t.numel_ == 0, "a tensor view of ", shape_text(t.shape_), " needs memory (got null)");
  t.data_ = data;
  t.defined_ = true;
  return t;
}

int64_t Tensor::row_elements() const {
  int64_t n = 1;
  for (size_t i = 1; i < shape_.size(); ++i) n *= shape_[i];
  return n;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  FW_CHECK(!shape_.empty() && 0 <= begin && begin <= end && end <= shape_[0], "rows [", begin, ", ", end,
           ") of a tensor of shape ", shape_text(shape_));
  Tensor t = *this;
  t.shape_[0] = end - begin;
  t.numel_ = shape_numel(t.shape_);
  t.data_ = static_cast<uint8_t*>(data_) + static_cast<size_t>(begin * row_elements()) * dtype_bytes(dtype_);
  return t;
}

Tensor Tensor::reshaped(std::vector<int64_t> shape) const {
  FW_CHECK(shape_numel(shape) == numel_, "cannot view a tensor of shape ", shape_text(shape_), " as ",
           shape_text(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

}  // namespace flywheel
