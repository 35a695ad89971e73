#include "ckpt/checksum.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
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

using XxhState = std::unique_ptr<XXH3_state_t, XxhStateDeleter>;

XxhState new_xxh3_state() {
  XxhState state(XXH3_createState());
  FW_CHECK(state && XXH3_64bits_reset(state.get()) == XXH_OK, "XXH3 state allocation failed");
  return state;
}

// Writes all `bytes` at `offset` (pwrite may write less than asked; EINTR is retried).
void pwrite_all(int fd, const std::string& path, const unsigned char* data, uint64_t bytes, uint64_t offset) {
  while (bytes > 0) {
    const ssize_t n = ::pwrite(fd, data, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    FW_CHECK(n > 0, "writing ", bytes, " bytes at offset ", offset, " of ", path,
             " failed: ", n < 0 ? std::strerror(errno) : "no progress (0 bytes written)");
    data += n;
    bytes -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

// Hashes file bytes [begin, end) read from fd: the HDF5 metadata between datasets (kilobytes).
void hash_file_range(int fd, const std::string& path, uint64_t begin, uint64_t end, XXH3_state_t* state,
                     std::vector<unsigned char>& buffer) {
  while (begin < end) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(end - begin, buffer.size()));
    const ssize_t got = ::pread(fd, buffer.data(), want, static_cast<off_t>(begin));
    if (got < 0 && errno == EINTR) continue;
    FW_CHECK(got > 0, "reading bytes [", begin, ", ", end, ") of ", path, " for its checksum failed: ",
             got < 0 ? std::strerror(errno) : "unexpected end of file");
    XXH3_64bits_update(state, buffer.data(), static_cast<size_t>(got));
    begin += static_cast<uint64_t>(got);
  }
}

FileDigest digest_impl(const std::string& path, const std::function<void(uint64_t)>& on_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  FW_CHECK(fd >= 0, "cannot open ", path, " to checksum it: ", std::strerror(errno));
  FdCloser closer{fd};
  XxhState state = new_xxh3_state();

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
  return digest;
}

}  // namespace

FileDigest digest_file(const std::string& path) { return digest_impl(path, {}); }

FileDigest digest_file_with_progress(const std::string& path, const std::function<void(uint64_t)>& on_bytes) {
  return digest_impl(path, on_bytes);
}

FileDigest write_extents_and_digest(const std::string& path, std::vector<MemoryExtent> extents) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  FW_CHECK(fd >= 0, "cannot open ", path, " to write its tensor data: ", std::strerror(errno));
  FdCloser closer{fd};
  struct stat st {};
  FW_CHECK(::fstat(fd, &st) == 0, "cannot stat ", path, ": ", std::strerror(errno));
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);

  std::sort(extents.begin(), extents.end(),
            [](const MemoryExtent& a, const MemoryExtent& b) { return a.offset < b.offset; });
  uint64_t end = 0;
  for (const MemoryExtent& e : extents) {
    FW_CHECK(e.offset >= end && e.offset + e.bytes <= file_bytes, path, ": data extent [", e.offset, ", ",
             e.offset + e.bytes, ") overlaps the previous one (ending at ", end, ") or lies beyond the file's ",
             file_bytes, " bytes");
    end = e.offset + e.bytes;
  }

  XxhState state = new_xxh3_state();
  // 4 MiB pieces: a piece just hashed is still in the CPU cache when write(2) copies it into the page
  // cache, so the tensor data crosses the memory bus about once instead of twice.
  constexpr uint64_t kPiece = uint64_t{4} << 20;
  // Start writeback every 64 MiB so the disk works while we are still copying, instead of holding
  // up to dirty_background_ratio of RAM (GBs) dirty until the final fsync. (On the shared dev box an
  // A/B of this hint was within noise; it bounds dirty memory for multi-GB shards either way.)
  constexpr uint64_t kWritebackEvery = uint64_t{64} << 20;
  std::vector<unsigned char> buffer(size_t{1} << 20);  // for the metadata gaps only
  uint64_t pos = 0, unsubmitted_begin = 0;
  for (const MemoryExtent& e : extents) {
    hash_file_range(fd, path, pos, e.offset, state.get(), buffer);
    const auto* data = static_cast<const unsigned char*>(e.data);
    for (uint64_t done = 0; done < e.bytes;) {
      const uint64_t n = std::min(kPiece, e.bytes - done);
      XXH3_64bits_update(state.get(), data + done, static_cast<size_t>(n));
      pwrite_all(fd, path, data + done, n, e.offset + done);
      done += n;
      const uint64_t written_to = e.offset + done;
      if (written_to - unsubmitted_begin >= kWritebackEvery) {
        // Only a hint (EINVAL etc. on odd file systems are harmless): durability comes from fsync below.
        (void)::sync_file_range(fd, static_cast<off_t>(unsubmitted_begin),
                                static_cast<off_t>(written_to - unsubmitted_begin), SYNC_FILE_RANGE_WRITE);
        unsubmitted_begin = written_to;
      }
    }
    pos = e.offset + e.bytes;
  }
  hash_file_range(fd, path, pos, file_bytes, state.get(), buffer);
  FW_CHECK(::fsync(fd) == 0, "fsync of ", path, " failed: ", std::strerror(errno));
  closer.fd = -1;
  FW_CHECK(::close(fd) == 0, "closing ", path, " failed: ", std::strerror(errno));
  return {XXH3_64bits_digest(state.get()), file_bytes};
}

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(value));
  return text;
}

}  // namespace flywheel
