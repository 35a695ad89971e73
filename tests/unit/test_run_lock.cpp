// The run directory lock (train/run_lock.h): a second holder is refused with the first one named,
// the kernel releases a killed holder's lock, and a failed start removes only a directory it created
// and left empty.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "train/run_lock.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

using testing::error_message;
using testing::TempDir;

std::string pid_text(pid_t pid) { return "pid " + std::to_string(pid) + " on host "; }

TEST(RunDirLock, SecondHolderIsRefusedNamingTheFirst) {
  TempDir dir("run-lock");
  RunDirLock first = RunDirLock::take(dir.path, /*created=*/false);
  EXPECT_TRUE(first.locked());
  std::string holder;
  // flock belongs to the open file, so a second open in the same process is a second holder.
  EXPECT_FALSE(RunDirLock::try_take(dir.path, false, &holder));
  EXPECT_NE(holder.find(pid_text(::getpid())), std::string::npos) << holder;
  EXPECT_NE(holder.find("holding it since 20"), std::string::npos) << holder;
  const std::string message = error_message([&] { RunDirLock::take(dir.path, false); });
  EXPECT_NE(message.find("run directory " + dir.str() + " is in use by another job: " + pid_text(::getpid())),
            std::string::npos)
      << message;
}

TEST(RunDirLock, ReleasedWhenDestroyed) {
  TempDir dir("run-lock");
  { RunDirLock first = RunDirLock::take(dir.path, false); }
  EXPECT_TRUE(RunDirLock::try_take(dir.path, false, nullptr));
}

TEST(RunDirLock, KilledHolderIsTakenOver) {
  TempDir dir("run-lock");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // the holder: takes the lock, says so, waits to be killed
    RunDirLock lock = RunDirLock::take(dir.path, false);
    const char byte = 1;
    if (::write(ready[1], &byte, 1) != 1) ::_exit(2);
    for (;;) ::pause();
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  std::string holder;
  EXPECT_FALSE(RunDirLock::try_take(dir.path, false, &holder));
  EXPECT_NE(holder.find(pid_text(child)), std::string::npos) << holder;
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  std::optional<RunDirLock> taken = RunDirLock::try_take(dir.path, false, &holder);
  ASSERT_TRUE(taken) << "the lock of a killed holder is still held";
  EXPECT_TRUE(taken->locked());
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST(RunDirLock, FailedStartRemovesOnlyAnEmptyDirectoryItCreated) {
  TempDir parent("run-lock");
  const fs::path created = parent.path / "new-run";
  fs::create_directory(created);
  RunDirLock::take(created, /*created=*/true).release_and_remove_if_unused();
  EXPECT_FALSE(fs::exists(created));

  const fs::path used = parent.path / "used-run";
  fs::create_directory(used);
  RunDirLock lock = RunDirLock::take(used, true);
  std::ofstream(used / "metrics.jsonl") << "{}\n";
  lock.release_and_remove_if_unused();
  EXPECT_TRUE(fs::exists(used / "metrics.jsonl"));

  const fs::path existing = parent.path / "existing-run";
  fs::create_directory(existing);
  RunDirLock::take(existing, /*created=*/false).release_and_remove_if_unused();
  EXPECT_TRUE(fs::exists(existing));
}

TEST(RunDirLock, HolderWithoutARecord) {
  TempDir dir("run-lock");
  std::ofstream(dir.path / ".lock") << "";
  EXPECT_NE(describe_lock_holder(dir.path).find("has not recorded its details"), std::string::npos);
}

}  // namespace
}  // namespace flywheel
