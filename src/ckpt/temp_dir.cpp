#include "ckpt/temp_dir.h"

#include <fcntl.h>
#include <stdio.h>  // renameat2 (glibc >= 2.28)
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iterator>

#include "ckpt/durable_fs.h"
#include "core/error.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

// The kernel's getdents64 record (getdents64(2)); glibc's readdir may allocate, so the handler
// reads directory entries with the system call into a static buffer.
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

bool is_dot(const char* name) { return name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0)); }

// Only system calls: safe in a signal handler. Entries unlinked while the directory is being read
// may make a pass miss others (POSIX leaves it open), so passes repeat until one removes nothing.
void remove_flat_directory(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  alignas(8) static char buffer[8192];
  for (int pass = 0; pass < 16; ++pass) {
    bool removed = false;
    ::lseek(fd, 0, SEEK_SET);
    long n;
    while ((n = ::syscall(SYS_getdents64, fd, buffer, sizeof buffer)) > 0) {
      for (long at = 0; at < n;) {
        const auto* entry = reinterpret_cast<const LinuxDirent64*>(buffer + at);
        at += entry->d_reclen;
        if (!is_dot(entry->d_name) && ::unlinkat(fd, entry->d_name, 0) == 0) removed = true;
      }
    }
    if (!removed) break;
  }
  ::close(fd);
  ::rmdir(path);
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

TemporaryDirectory::TemporaryDirectory(std::string final_path) : final_(std::move(final_path)) {
  tmp_ = final_;
  tmp_ += ".tmp-";
  tmp_ += std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp_, ec);  // only a process with our pid, long gone, can have left it
  FW_CHECK(::mkdir(tmp_.c_str(), 0755) == 0, "cannot create directory ", tmp_, ": ", std::strerror(errno));
  cleanup_ = std::make_unique<CleanupOnSignal>(remove_flat_directory, tmp_.c_str());
}

TemporaryDirectory::~TemporaryDirectory() {
  std::error_code ec;
  if (!committed_) fs::remove_all(tmp_, ec);  // a failed command: nothing of it stays behind
}

void TemporaryDirectory::commit(bool replace) {
  fsync_directory(tmp_);
  std::error_code ec;
  const bool occupied = fs::is_directory(final_, ec) && !fs::is_empty(final_, ec);
  if (!(replace && occupied)) {
    // Onto a missing or empty directory rename(2) is atomic; onto a non-empty one it fails.
    FW_CHECK(std::rename(tmp_.c_str(), final_.c_str()) == 0, "cannot rename ", tmp_, " to ", final_, ": ",
             std::strerror(errno));
    committed_ = true;
    cleanup_->disarm();
    fsync_directory(parent_of(final_));
    return;
  }
  FW_CHECK(::renameat2(AT_FDCWD, tmp_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) == 0, "cannot exchange ",
           tmp_, " with ", final_, ": ", std::strerror(errno));
  committed_ = true;  // tmp_ now names the replaced directory: the destructor must not count on it
  cleanup_->disarm();
  fsync_directory(parent_of(final_));
  fs::remove_all(tmp_, ec);
  FW_CHECK(!ec, final_, " is in place, but the directory it replaced, now ", tmp_,
           ", could not be removed: ", ec.message());
}

}  // namespace flywheel
