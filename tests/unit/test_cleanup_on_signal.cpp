// CleanupOnSignal (ckpt/cleanup_on_signal.h) in a forked child: nested scopes (a temporary file inside
// a temporary directory, as flywheel-ckpt export --format hf writes them) are cleaned up innermost
// first when SIGTERM arrives, and the child still dies by that signal; a disarmed scope is left alone.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "ckpt/temp_dir.h"
#include "ckpt/temp_output.h"
#include "test_util.h"

namespace flywheel {
namespace {

namespace fs = std::filesystem;

// Runs body in a child process and returns its wait status.
template <typename Body>
int in_child(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    body();
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(CleanupOnSignal, NestedScopesAreRemovedAndTheSignalStillEndsTheProcess) {
  const testing::TempDir dir("cleanup_on_signal");
  const std::string out = (dir.path / "export").string();
  const int status = in_child([&] {
    TemporaryDirectory folder(out);
    std::ofstream(folder.path() + "/config.json") << "{}";
    TemporaryOutput weights(folder.path() + "/model.safetensors");
    std::ofstream(weights.path()) << "partial";
    ::raise(SIGTERM);
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "status " << status;
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_TRUE(fs::is_empty(dir.path)) << "left: " << fs::directory_iterator(dir.path)->path();
}

TEST(CleanupOnSignal, ACommittedOutputStaysWhenALaterSignalArrives) {
  const testing::TempDir dir("cleanup_on_signal_committed");
  const std::string done = (dir.path / "done.txt").string(), open = (dir.path / "open.txt").string();
  const int status = in_child([&] {
    TemporaryOutput first(done);
    std::ofstream(first.path()) << "whole";
    first.commit();
    TemporaryOutput second(open);
    std::ofstream(second.path()) << "partial";
    ::raise(SIGHUP);
  });
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGHUP);
  EXPECT_TRUE(fs::exists(done));
  EXPECT_FALSE(fs::exists(open + ".tmp"));
  EXPECT_FALSE(fs::exists(open));
}

}  // namespace
}  // namespace flywheel
