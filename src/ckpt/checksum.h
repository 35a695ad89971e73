// File checksums: XXH3-64 (seed 0) over every byte of the file, plus its size in bytes. This is
// exactly XXH3_64bits(whole file contents); Python: xxhash.xxh3_64_intdigest(open(f, "rb").read()).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace flywheel {

struct FileDigest {
  uint64_t xxh3_64 = 0;
  uint64_t bytes = 0;
};

// Reads the file in 4 MiB blocks. Throws naming the file when it cannot be read.
FileDigest digest_file(const std::string& path);

// Bytes [offset, offset + bytes) of a file whose contents are in memory at `data`.
struct MemoryExtent {
  uint64_t offset = 0;
  uint64_t bytes = 0;
  const void* data = nullptr;
};

// Fills the extents of the existing file `path` from memory, fsyncs it, and returns its digest --
// the same digest_file would compute -- without reading the extents back: each extent is hashed from
// memory as it is written, and only the bytes between extents (and after the last) are read from the
// file. The file must already span every extent (the HDF5 shard writer allocates them) and extents
// must not overlap. Each extent goes out as large sequential writes in file order, and writeback is
// started as they go, so the final fsync waits for little more than the tail.
// Throws naming the file on any I/O error (ENOSPC included) or a bad extent.
FileDigest write_extents_and_digest(const std::string& path, std::vector<MemoryExtent> extents);

// digest_file without fsync, calling on_bytes(n) after each block of n bytes is hashed, so offline
// tools can show progress over multi-GiB shards. (A separate name, not an overload: a captureless
// lambda converts to bool as readily as to std::function.)
FileDigest digest_file_with_progress(const std::string& path, const std::function<void(uint64_t)>& on_bytes);

// "0123456789abcdef": 16 lower-case hex digits.
std::string hex64(uint64_t value);

}  // namespace flywheel
