#include "ckpt/checksum.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "core/error.h"

namespace flywheel {
namespace {

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

struct XxhStateDeleter {
  void operator()(XXH3_state_t* state) const { XXH3_freeState(state); }
};

FileDigest digest_impl(const std::string& path, bool sync, const std::function<void(uint64_t)>& on_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FW_CHECK(fd >= 0, "cannot open ", path, " to checksum it: ", std::strerror(errno));
  FdCloser closer{fd};
  std::unique_ptr<XXH3_state_t, XxhStateDeleter> state(XXH3_createState());
  FW_CHECK(state && XXH3_64bits_reset(state.get()) == XXH_OK, "XXH3 state allocation failed");

  constexpr size_t kBlock = size_t{4} << 20;  // 4 MiB: large sequential reads, small resident buffer
  std::vector<unsigned char> block(kBlock);
  FileDigest digest;
  for (;;) {
    const ssize_t got = ::read(fd, block.data(), block.size());
    if (got < 0 && errno == EINTR) continue;
    FW_CHECK(got >= 0, "reading ", path, " for its checksum failed: ", std::strerror(errno));
    if (got == 0) break;
    XXH3_64bits_update(state.get(), block.data(), static_cast<size_t>(got));
    digest.bytes += static_cast<uint64_t>(got);
    if (on_bytes) on_bytes(static_cast<uint64_t>(got));
  }
  digest.xxh3_64 = XXH3_64bits_digest(state.get());
  if (sync) FW_CHECK(::fsync(fd) == 0, "fsync of ", path, " failed: ", std::strerror(errno));
  return digest;
}

}  // namespace

FileDigest digest_file(const std::string& path, bool sync) { return digest_impl(path, sync, {}); }

FileDigest digest_file_with_progress(const std::string& path, const std::function<void(uint64_t)>& on_bytes) {
  return digest_impl(path, /*sync=*/false, on_bytes);
}

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace flywheel
