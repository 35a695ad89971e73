// A fresh directory under GoogleTest's temp dir, unique per process and instance, removed at the end
// of its scope (shared by the unit tests that write files).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

namespace flywheel::testing {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "flywheel") {
    static std::atomic<int> counter{0};
    path = std::filesystem::path(::testing::TempDir()) /
           (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string str() const { return path.string(); }
};

}  // namespace flywheel::testing
