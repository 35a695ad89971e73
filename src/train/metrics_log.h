// metrics.jsonl: one JSON object per optimizer step, appended and flushed as it happens so a
// killed run keeps every completed step.
#pragma once

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

namespace flywheel {

class MetricsLog {
 public:
  explicit MetricsLog(const std::string& path);
  void append(const nlohmann::json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace flywheel
