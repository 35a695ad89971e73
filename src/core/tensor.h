// Tensors at the boundaries where data leaves the math: a dtype, a shape, a device, and contiguous
// row-major storage that the tensor owns or only views.
//
// The math itself (ops/, the backend) works on pointers and sizes, as BLAS and CUDA kernels do;
// a Tensor is what crosses from one part of the system to another -- the parameter registry, a
// checkpoint shard, a snapshot, a message on the comm data plane -- so that every consumer knows
// what the bytes are. bf16 and fp16 live in 2 bytes (BFloat16 / Float16 in core/bf16.h).
//
// Ownership: Tensor::empty / zeros allocate (64-byte aligned) and share the storage between copies,
// as a shared_ptr does; Tensor::view wraps memory someone else keeps alive. Views of an owning
// tensor (rows(), reshaped()) keep its storage alive.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"

namespace flywheel {

enum class DType : uint8_t { kF32, kBF16, kF16, kI32, kI64, kF64, kU8 };

// Bytes per element: 4, 2, 2, 4, 8, 8, 1.
size_t dtype_bytes(DType dtype);
// "f32", "bf16", "f16", "i32", "i64", "f64", "u8".
const char* dtype_name(DType dtype);
// The inverse of dtype_name; throws naming the text and the allowed names.
DType parse_dtype(const std::string& text);

struct BFloat16;
struct Float16;

// The dtype of a C++ element type (float -> kF32, ...), at compile time.
template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kF32; }
template <> constexpr DType dtype_of<double>() { return DType::kF64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kI32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kI64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kU8; }
template <> constexpr DType dtype_of<BFloat16>() { return DType::kBF16; }
template <> constexpr DType dtype_of<Float16>() { return DType::kF16; }

// Where the storage lives. Host only for now; a CUDA build adds its devices here.
enum class Device : uint8_t { kHost };
const char* device_name(Device device);

// Elements of a shape: the product of its dimensions (1 for a scalar, shape {}).
int64_t shape_numel(const std::vector<int64_t>& shape);
// "[4096, 11008]" for messages.
std::string shape_text(const std::vector<int64_t>& shape);

class Tensor {
 public:
  Tensor() = default;  // undefined: no storage, numel 0

  // Owning tensors (uninitialised or zero-filled), 64-byte aligned.
  static Tensor empty(DType dtype, std::vector<int64_t> shape, Device device = Device::kHost);
  static Tensor zeros(DType dtype, std::vector<int64_t> shape, Device device = Device::kHost);
  // A view of memory the caller keeps alive.
  static Tensor view(void* data, DType dtype, std::vector<int64_t> shape, Device device = Device::kHost);
  static Tensor view(const void* data, DType dtype, std::vector<int64_t> shape, Device device = Device::kHost) {
    return view(const_cast<void*>(data), dtype, std::move(shape), device);
  }
  template <typename T>
  static Tensor view(T* data, std::vector<int64_t> shape) {
    return view(static_cast<void*>(data), dtype_of<T>(), std::move(shape));
  }
  template <typename T>
  static Tensor view(const T* data, std::vector<int64_t> shape) {
    return view(const_cast<T*>(data), std::move(shape));
  }

  bool defined() const { return defined_; }
  bool owns_storage() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return static_cast<size_t>(numel_) * dtype_bytes(dtype_); }
  // Elements per row of dim 0 (1 for a vector or scalar).
  int64_t row_elements() const;

  void* raw() const { return data_; }
  // Typed access; throws naming both dtypes when T is not the tensor's element type.
  template <typename T>
  T* data() const {
    FW_CHECK(dtype_of<T>() == dtype_, "tensor of dtype ", dtype_name(dtype_), " read as ", dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_);
  }

  // A view of rows [begin, end) of dim 0 (shares the storage).
  Tensor rows(int64_t begin, int64_t end) const;
  // A view with another shape of the same number of elements.
  Tensor reshaped(std::vector<int64_t> shape) const;

 private:
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::kF32;
  Device device_ = Device::kHost;
  std::vector<int64_t> shape_;
  int64_t numel_ = 0;
  bool defined_ = false;
};

// A tensor with its global name (Hugging Face style, "model.layers.0.mlp.up_proj.weight"): what
// snapshots, checkpoints and model files hold.
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

}  // namespace flywheel
