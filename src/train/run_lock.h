// One job per run directory. Trainer rank 0 holds flock(2) on <run>/.lock for the whole run and
// writes the holder into it (host, pid, Slurm job id, start time); a second job on the directory is
// refused with a message naming that holder. Two trainers on one directory would otherwise delete
// each other's checkpoints and interleave metrics.jsonl.
//
// Why flock: the kernel releases it when the holding process ends, however it ends (SIGKILL, OOM,
// the node tearing the job down), so a dead holder never blocks the next job and there is no stale
// lock to detect or time out. The file itself is never deleted while in use: unlinking a lock file
// lets two processes lock two different inodes under the same name.
//
// Filesystems: Linux's NFS client implements flock with POSIX locks (NLM / NFSv4), so the lock
// holds across hosts; Lustre needs `-o flock`. Where the filesystem has no locks at all (ENOLCK,
// EOPNOTSUPP, ENOSYS) the run goes on unlocked with a warning saying so.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace flywheel {

class RunDirLock {
 public:
  RunDirLock() = default;
  RunDirLock(RunDirLock&& other) noexcept;
  RunDirLock& operator=(RunDirLock&& other) noexcept;
  ~RunDirLock();  // releases the lock (the file stays)

  // Locks the existing directory `run_dir`; nullopt when another process holds the lock, with
  // *holder set to its description (describe_lock_holder). `created`: the caller has just created
  // run_dir, so remove_if_unused may remove it again.
  static std::optional<RunDirLock> try_take(const std::filesystem::path& run_dir, bool created, std::string* holder);
  // The same, throwing "run directory X is in use by <holder>" when it is held.
  static RunDirLock take(const std::filesystem::path& run_dir, bool created);

  bool locked() const { return fd_ >= 0; }
  const std::filesystem::path& dir() const { return dir_; }

  // Releases the lock; when this lock created the run directory and it holds nothing but .lock,
  // removes both, so a run that fails before writing anything leaves nothing behind.
  void release_and_remove_if_unused();

 private:
  void release();

  int fd_ = -1;
  std::filesystem::path dir_;
  bool created_ = false;
};

// "pid 4242 on host node07 (Slurm job 1234), holding it since 2025-01-01T12:00:00Z", from the lock
// file of run_dir; says so when the holder has not written its details (yet).
std::string describe_lock_holder(const std::filesystem::path& run_dir);

}  // namespace flywheel
