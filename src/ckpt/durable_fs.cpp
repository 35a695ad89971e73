#include "ckpt/durable_fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace flywheel {
namespace {

void fsync_path(const std::string& path, int flags, const char* what) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  FW_CHECK(fd >= 0, "cannot open ", what, " ", path, " to fsync it: ", std::strerror(errno));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  FW_CHECK(rc == 0, "fsync of ", what, " ", path, " failed: ", std::strerror(saved));
}

std::string parent_of(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

void fsync_file(const std::string& path) { fsync_path(path, O_RDONLY, "file"); }

void fsync_directory(const std::string& path) { fsync_path(path, O_RDONLY | O_DIRECTORY, "directory"); }

void rename_durably(const std::string& from, const std::string& to) {
  FW_CHECK(std::rename(from.c_str(), to.c_str()) == 0, "cannot rename ", from, " to ", to, ": ",
           std::strerror(errno));
  fsync_directory(parent_of(to));
}

void replace_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  FW_CHECK(fd >= 0, "cannot create ", tmp, ": ", std::strerror(errno));
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int saved = errno;
      ::close(fd);
      FW_THROW("writing ", tmp, " failed: ", std::strerror(saved));
    }
    done += static_cast<size_t>(n);
  }
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  FW_CHECK(rc == 0, "fsync of ", tmp, " failed: ", std::strerror(saved));
  rename_durably(tmp, path);
}

}  // namespace flywheel
