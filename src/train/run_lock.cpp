#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "core/utc_time.h"

namespace flywheel {
namespace fs = std::filesystem;
namespace {

constexpr const char* kLockFile = ".lock";

enum class LockOutcome { kTaken, kHeld, kUnsupported };

// flock(LOCK_EX | LOCK_NB): a second job is refused at once, but not by a probe: run_dir_lock_held
// holds a shared lock for microseconds, so a held lock is tried again for ~50 ms before it counts.
LockOutcome lock_now(int fd, const fs::path& file) {
  for (int attempt = 0;; ++attempt) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return LockOutcome::kTaken;
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK && attempt < 5) {
      ::usleep(10'000);
      continue;
    }
    if (errno == EWOULDBLOCK) return LockOutcome::kHeld;
    if (errno == ENOLCK || errno == EOPNOTSUPP || errno == ENOSYS) return LockOutcome::kUnsupported;
    FW_THROW("cannot lock ", file.string(), ": ", std::strerror(errno));
  }
}

std::string holder_record() {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "unknown");
  nlohmann::json record = {{"host", host}, {"pid", static_cast<int64_t>(::getpid())}, {"since", utc_iso8601_now()}};
  if (const char* job = std::getenv("SLURM_JOB_ID")) record["slurm_job_id"] = job;
  return record.dump() + "\n";
}

// Replaces the file's content with this process's record. Best effort: the lock is what matters,
// the record only names the holder in a refusal.
void write_holder(int fd, const fs::path& file) {
  const std::string record = holder_record();
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, record.data(), record.size(), 0) != static_cast<ssize_t>(record.size()))
    log_warn("run directory lock ", file.string(), ": could not record the holder: ", std::strerror(errno));
}

}  // namespace

RunDirLock::RunDirLock(RunDirLock&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), dir_(std::move(other.dir_)), created_(other.created_) {}

RunDirLock& RunDirLock::operator=(RunDirLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = std::exchange(other.fd_, -1);
    dir_ = std::move(other.dir_);
    created_ = other.created_;
  }
  return *this;
}

RunDirLock::~RunDirLock() { release(); }

void RunDirLock::release() {
  if (fd_ >= 0) ::close(fd_);  // closing the last descriptor of the open file releases the flock
  fd_ = -1;
}

std::optional<RunDirLock> RunDirLock::try_take(const fs::path& run_dir, bool created, std::string* holder) {
  const fs::path file = run_dir / kLockFile;
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  FW_CHECK(fd >= 0, "cannot open the run directory lock ", file.string(), ": ", std::strerror(errno));
  LockOutcome outcome;
  try {
    outcome = lock_now(fd, file);
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (outcome == LockOutcome::kHeld) {
    ::close(fd);
    if (holder) *holder = describe_lock_holder(run_dir);
    return std::nullopt;
  }
  RunDirLock lock;
  lock.dir_ = run_dir;
  lock.created_ = created;
  if (outcome == LockOutcome::kUnsupported) {
    const int error = errno;
    log_warn("run directory ", run_dir.string(), ": the filesystem does not support flock (", std::strerror(error),
             "); running without the run directory lock, so a second job on this directory would not be refused");
    ::close(fd);
    return lock;
  }
  lock.fd_ = fd;
  write_holder(fd, file);
  return lock;
}

RunDirLock RunDirLock::take(const fs::path& run_dir, bool created) {
  std::string holder;
  std::optional<RunDirLock> lock = try_take(run_dir, created, &holder);
  FW_INPUT_CHECK(lock, "run directory ", run_dir.string(), " is in use by another job: ", holder,
                 ". Two jobs on one run directory would delete each other's checkpoints; wait for it to end (or ",
                 "stop it), or give this job another train.run_name");
  return std::move(*lock);
}

void RunDirLock::release_and_remove_if_unused() {
  release();
  if (!created_ || dir_.empty()) return;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir_, ec))
    if (entry.path().filename() != kLockFile) return;
  fs::remove(dir_ / kLockFile, ec);
  fs::remove(dir_, ec);
}

bool run_dir_lock_held(const fs::path& run_dir) {
  const fs::path file = run_dir / kLockFile;
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);  // never creates: reading leaves the run as it is
  if (fd < 0) return false;
  int rc;
  do rc = ::flock(fd, LOCK_SH | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  const bool held = rc != 0 && errno == EWOULDBLOCK;
  ::close(fd);  // releases the shared lock, if taken
  return held;
}

std::string describe_lock_holder(const fs::path& run_dir) {
  std::ifstream in(run_dir / kLockFile);
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json record = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!record.is_object() || !record.contains("pid"))
    return "a process that has not recorded its details in " + (run_dir / kLockFile).string() + " yet";
  std::string description = detail::concat("pid ", record["pid"].dump(), " on host ", record.value("host", "?"));
  if (record.contains("slurm_job_id")) description += " (Slurm job " + record.value("slurm_job_id", "?") + ")";
  return description + ", holding it since " + record.value("since", "?");
}

}  // namespace flywheel
