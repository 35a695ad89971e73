// Helpers shared by the unit tests: a scratch directory, and the message of an expected error.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "core/error.h"

namespace flywheel::testing {

// A fresh directory under GoogleTest's temp dir, unique per process and instance, removed at the end
// of its scope.
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

// The message of the flywheel::Error that `body` throws ("" and a test failure if none).
template <typename Body>
std::string error_message(Body body) {
  try {
    body();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a flywheel::Error";
  return "";
}

}  // namespace flywheel::testing
