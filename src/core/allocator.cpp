#include "core/allocator.h"

#include <malloc.h>

namespace flywheel {

void keep_freed_memory() {
  // Buffers up to 32 MiB come from the heap (not mmap), and the heap is trimmed only past 1 GiB free.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace flywheel
