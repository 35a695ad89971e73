// File checksums: XXH3-64 (seed 0) over every byte of the file, plus its size in bytes. This is
// exactly XXH3_64bits(whole file contents); Python: xxhash.xxh3_64_intdigest(open(f, "rb").read()).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace flywheel {

struct FileDigest {
  uint64_t xxh3_64 = 0;
  uint64_t bytes = 0;
};

// Reads the file in 4 MiB blocks. With `sync`, also fsyncs it (one open for both: the shard writer
// hashes what it just closed and makes it durable). Throws naming the file when it cannot be read.
FileDigest digest_file(const std::string& path, bool sync = false);

// digest_file without fsync, calling on_bytes(n) after each block of n bytes is hashed, so offline
// tools can show progress over multi-GiB shards. (A separate name, not an overload: a captureless
// lambda converts to bool as readily as to std::function.)
FileDigest digest_file_with_progress(const std::string& path, const std::function<void(uint64_t)>& on_bytes);

// "0123456789abcdef": 16 lower-case hex digits.
std::string hex64(uint64_t value);

}  // namespace flywheel
