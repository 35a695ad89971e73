// Aligned contiguous storage for fp32/fp64 arrays (64-byte alignment: one cache line, one AVX-512 vector).
#pragma once

#include <cstddef>
#include <new>
#include <vector>

namespace flywheel {

template <typename T, std::size_t Alignment = 64>
struct AlignedAllocator {
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, Alignment>;
  };
  AlignedAllocator() noexcept = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Alignment>&) noexcept {}

  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Alignment)));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t(Alignment)); }
  bool operator==(const AlignedAllocator&) const noexcept { return true; }
  bool operator!=(const AlignedAllocator&) const noexcept { return false; }
};

// Buffer<float> is the storage type for weights, gradients, activations and optimizer state.
template <typename T>
using Buffer = std::vector<T, AlignedAllocator<T>>;

}  // namespace flywheel
