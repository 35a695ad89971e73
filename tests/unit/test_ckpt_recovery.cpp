// Checkpoint crash safety and retention: `latest`, keep_last, falling back past corrupt, truncated
// or missing files, the error when nothing is loadable, stale *.partial directories, re-saving a
// step. Each saved step holds data derived from its step number, so a test can tell which loaded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ckpt/checkpoint.h"
#include "comm/local_comm.h"
#include "core/error.h"
#include "test_util.h"

namespace flywheel {
namespace {
namespace fs = std::filesystem;

using testing::TempDir;

// One [8, 3] tensor whose elements encode the step: weight = step + i/100, moments offset by 1000s.
struct StepTensor {
  std::vector<float> w = std::vector<float>(24), m = std::vector<float>(24), v = std::vector<float>(24);
  explicit StepTensor(int64_t step = 0) {
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = static_cast<float>(step) + static_cast<float>(i) / 100.0f;
      m[i] = w[i] + 1000.0f;
      v[i] = w[i] + 2000.0f;
    }
  }
  std::vector<TensorSlice> slices() { return {float_slice("model.norm.weight", {8, 3}, 0, 8, w.data(), m.data(), v.data())}; }
  bool operator==(const StepTensor& o) const { return w == o.w && m == o.m && v == o.v; }
};

void save_step(Comm& comm, const std::string& dir, int64_t step, int keep_last = 0) {
  StepTensor tensor(step);
  CheckpointState state;
  state.step = step;
  save_checkpoint(comm, dir, state, tensor.slices(), keep_last);
}

// Loads into a fresh tensor; returns the loaded step and checks the data is that step's.
int64_t load_and_check(Comm& comm, const std::string& dir, std::optional<int64_t> step = std::nullopt) {
  StepTensor tensor;
  std::vector<TensorSlice> slices = tensor.slices();
  const LoadResult result = load_checkpoint(comm, dir, step, slices);
  EXPECT_TRUE(tensor == StepTensor(result.step)) << "data of step " << result.step << " is not what was saved";
  return result.step;
}

std::string shard_path(const TempDir& dir, int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld/shard-00000.h5", static_cast<long long>(step));
  return (dir.path / name).string();
}

void flip_byte(const std::string& path, uint64_t at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(at));
  char byte = 0;
  f.get(byte);
  f.seekp(static_cast<std::streamoff>(at));
  f.put(static_cast<char>(byte ^ 0x10));
}

using testing::error_message;

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(CheckpointRecovery, LatestNamesTheNewestAndRetentionKeepsTheLastTwo) {
  TempDir dir;
  auto comm = make_local_comm();
  for (int64_t step : {10, 20, 30, 40}) save_step(*comm, dir.str(), step, /*keep_last=*/2);
  EXPECT_EQ(committed_steps(dir.str()), (std::vector<int64_t>{30, 40}));
  std::ifstream latest(dir.path / "latest");
  std::string name;
  std::getline(latest, name);
  EXPECT_EQ(name, "step-00000040");
  EXPECT_FALSE(fs::exists(dir.path / "latest.tmp"));
  EXPECT_EQ(load_and_check(*comm, dir.str()), 40);
  EXPECT_EQ(load_and_check(*comm, dir.str(), 30), 30);
}

TEST(CheckpointRecovery, CorruptShardFallsBackToThePreviousStep) {
  TempDir dir;
  auto comm = make_local_comm();
  save_step(*comm, dir.str(), 10);
  save_step(*comm, dir.str(), 20);
  flip_byte(shard_path(dir, 20), fs::file_size(shard_path(dir, 20)) / 2);
  ::testing::internal::CaptureStderr();
  const int64_t loaded = load_and_check(*comm, dir.str());
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(loaded, 10);
  EXPECT_TRUE(contains(log, shard_path(dir, 20) + " fails its checksum")) << log;
  EXPECT_TRUE(contains(log, "falling back to step 10")) << log;
}

TEST(CheckpointRecovery, TruncatedShardFallsBackToThePreviousStep) {
  TempDir dir;
  auto comm = make_local_comm();
  save_step(*comm, dir.str(), 10);
  save_step(*comm, dir.str(), 20);
  fs::resize_file(shard_path(dir, 20), fs::file_size(shard_path(dir, 20)) - 100);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(load_and_check(*comm, dir.str()), 10);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, shard_path(dir, 20))) << log;
  EXPECT_TRUE(contains(log, "truncated")) << log;
}

TEST(CheckpointRecovery, MissingShardOrStateFileFallsBack) {
  TempDir dir;
  auto comm = make_local_comm();
  save_step(*comm, dir.str(), 10);
  save_step(*comm, dir.str(), 20);
  save_step(*comm, dir.str(), 30);
  fs::remove(shard_path(dir, 30));
  fs::resize_file(dir.path / "step-00000020" / "state.h5", 10);
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(load_and_check(*comm, dir.str()), 10);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(log, shard_path(dir, 30) + " is missing")) << log;
  EXPECT_TRUE(contains(log, "step-00000020/state.h5 is unusable")) << log;
}

TEST(CheckpointRecovery, NothingLoadableIsAClearError) {
  TempDir dir;
  auto comm = make_local_comm();
  std::vector<TensorSlice> none;
  EXPECT_TRUE(contains(error_message([&] { load_checkpoint(*comm, dir.str(), std::nullopt, none); }),
                       "no committed checkpoint in " + dir.str()));
  save_step(*comm, dir.str(), 10);
  flip_byte(shard_path(dir, 10), 100);
  ::testing::internal::CaptureStderr();
  const std::string message = error_message([&] { load_checkpoint(*comm, dir.str(), std::nullopt, none); });
  ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(contains(message, "no loadable checkpoint in " + dir.str())) << message;
  EXPECT_TRUE(contains(message, "step 10: " + shard_path(dir, 10) + " fails its checksum")) << message;
}

TEST(CheckpointRecovery, StalePartialDirectoriesAreRemovedBySaveAndLoad) {
  TempDir dir;
  auto comm = make_local_comm();
  save_step(*comm, dir.str(), 10);
  // What a crash mid-save leaves: a partial directory with some shards, newer than any commit.
  auto make_stale = [&] {
    fs::create_directories(dir.path / "step-00000020.partial");
    std::ofstream(dir.path / "step-00000020.partial" / "shard-00000.h5") << "half a file";
  };
  make_stale();
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(load_and_check(*comm, dir.str()), 10);
  std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(fs::exists(dir.path / "step-00000020.partial"));
  EXPECT_TRUE(contains(log, "removed " + (dir.path / "step-00000020.partial").string())) << log;

  make_stale();
  ::testing::internal::CaptureStderr();
  save_step(*comm, dir.str(), 30);
  log = ::testing::internal::GetCapturedStderr();
  EXPECT_FALSE(fs::exists(dir.path / "step-00000020.partial"));
  EXPECT_TRUE(contains(log, "step-00000020.partial")) << log;
  EXPECT_EQ(committed_steps(dir.str()), (std::vector<int64_t>{10, 30}));
}

TEST(CheckpointRecovery, ExplicitStepAndLatestNamingAMissingStep) {
  TempDir dir;
  auto comm = make_local_comm();
  save_step(*comm, dir.str(), 10);
  save_step(*comm, dir.str(), 20);
  EXPECT_EQ(load_and_check(*comm, dir.str(), 10), 10);
  std::vector<TensorSlice> none;
  const std::string message = error_message([&] { load_checkpoint(*comm, dir.str(), 15, none); });
  EXPECT_TRUE(contains(message, "step 15 is not a committed checkpoint")) << message;
  EXPECT_TRUE(contains(message, "committed steps: 10, 20")) << message;
  // A crash between moving a re-saved step aside and renaming its replacement leaves `latest`
  // naming a directory that does not exist: load uses the newest committed step instead.
  std::ofstream(dir.path / "latest") << "step-00000030\n";
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(load_and_check(*comm, dir.str()), 20);
  EXPECT_TRUE(contains(::testing::internal::GetCapturedStderr(), "names step 30, which is not committed"));
}

TEST(CheckpointRecovery, ResavingACommittedStepReplacesIt) {
  TempDir dir;
  auto comm = make_local_comm();
  save_step(*comm, dir.str(), 10);
  StepTensor other(77);  // different data under the same step number
  CheckpointState state;
  state.step = 10;
  ::testing::internal::CaptureStderr();
  save_checkpoint(*comm, dir.str(), state, other.slices(), 0);
  ::testing::internal::GetCapturedStderr();
  StepTensor loaded;
  std::vector<TensorSlice> slices = loaded.slices();
  EXPECT_EQ(load_checkpoint(*comm, dir.str(), std::nullopt, slices).step, 10);
  EXPECT_TRUE(loaded == other);
  EXPECT_EQ(committed_steps(dir.str()), (std::vector<int64_t>{10}));
  EXPECT_FALSE(fs::exists(dir.path / "step-00000010.replaced"));
}

}  // namespace
}  // namespace flywheel
