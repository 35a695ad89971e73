// ckpt/temp_dir: a directory built under DIR.tmp-<pid> and moved into place; nothing left on failure,
// and nothing left when a signal ends the process, also while a TemporaryOutput (ckpt/temp_output.h)
// inside it is being written (its handler hands the signal on to the directory's).
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "ckpt/temp_dir.h"
#include "ckpt/temp_output.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

class TempDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("flywheel-temp-dir-" + std::to_string(::getpid()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  static void write(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }
  static std::string read(const fs::path& path) {
    std::ifstream in(path);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  size_t entries() const { return static_cast<size_t>(std::distance(fs::directory_iterator(root_), {})); }
  fs::path root_;
};

TEST_F(TempDir, CommitMovesTheDirectoryIntoPlace) {
  const fs::path out = root_ / "model";
  {
    TemporaryDirectory dir(out.string());
    EXPECT_EQ(dir.path(), out.string() + ".tmp-" + std::to_string(::getpid()));
    write(fs::path(dir.path()) / "config.json", "{}");
    EXPECT_FALSE(fs::exists(out));
    dir.commit(false);
  }
  EXPECT_EQ(read(out / "config.json"), "{}");
  EXPECT_EQ(entries(), 1u);  // no DIR.tmp-<pid> beside it
}

TEST_F(TempDir, AnEmptyDirectoryIsTakenAndAFullOneReplacedOnlyWhenAsked) {
  const fs::path out = root_ / "model";
  fs::create_directory(out);
  {
    TemporaryDirectory dir(out.string());
    write(fs::path(dir.path()) / "a", "new");
    dir.commit(false);  // rename(2) onto an empty directory
  }
  EXPECT_EQ(read(out / "a"), "new");
  {
    TemporaryDirectory dir(out.string());
    write(fs::path(dir.path()) / "b", "newer");
    EXPECT_THROW(dir.commit(false), std::exception);  // not empty: refused, the old one untouched
  }
  EXPECT_EQ(read(out / "a"), "new");
  {
    TemporaryDirectory dir(out.string());
    write(fs::path(dir.path()) / "b", "newer");
    fs::create_directory(out / "sub");  // the replaced directory may be nested; it is deleted whole
    write(out / "sub" / "x", "x");
    dir.commit(true);
  }
  EXPECT_FALSE(fs::exists(out / "a"));
  EXPECT_FALSE(fs::exists(out / "sub"));
  EXPECT_EQ(read(out / "b"), "newer");
  EXPECT_EQ(entries(), 1u);
}

TEST_F(TempDir, AFailureLeavesNothing) {
  const fs::path out = root_ / "model";
  try {
    TemporaryDirectory dir(out.string());
    write(fs::path(dir.path()) / "model.safetensors", "partial");
    throw std::runtime_error("disk full");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(entries(), 0u);
}

// The child writes a directory with finished files and one file still under TemporaryOutput, then
// the signal arrives: it must die by that signal and leave neither the directory nor the final one.
void write_then_signal(const fs::path& out, int sig, bool inside_a_file) {
  TemporaryDirectory dir(out.string());
  std::ofstream(fs::path(dir.path()) / "config.json") << "{}";
  std::ofstream(fs::path(dir.path()) / "model-00001-of-00002.safetensors") << "done";
  if (inside_a_file) {
    TemporaryOutput file((fs::path(dir.path()) / "model-00002-of-00002.safetensors").string());
    std::ofstream(file.path()) << "half";
    ::raise(sig);
  }
  ::raise(sig);
  ::_exit(0);  // not reached: the signal's default action ends the process
}

TEST_F(TempDir, ASignalLeavesNothingAlsoInsideATemporaryOutput) {
  // The "fast" death-test style (fork, no re-exec): the child must see the parent's root_, which a
  // re-executed child would compute anew from its own pid.
  GTEST_FLAG_SET(death_test_style, "fast");
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    for (bool inside : {false, true}) {
      const fs::path out = root_ / "model";
      EXPECT_EXIT(write_then_signal(out, sig, inside), ::testing::KilledBySignal(sig), "");
      EXPECT_EQ(entries(), 0u) << "signal " << sig << (inside ? " inside a TemporaryOutput" : "");
    }
  }
}

}  // namespace
}  // namespace flywheel
