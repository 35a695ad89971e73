// Counters of `flywheel serve`, rendered as a Prometheus text-format page (GET /metrics; format 0.0.4,
// https://prometheus.io/docs/instrumenting/exposition_formats/). Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "deploy/generation_service.h"

namespace flywheel {

class ServerMetrics {
 public:
  void count_request(const std::string& route, int status, double seconds);
  void count_tokens(int64_t prompt, int64_t completion);
  void count_disconnect() { ++disconnects_; }
  struct HotLoads {
    int64_t loads = 0, failures = 0, loaded_step = -1;
  };
  // The page: these counters, the generation service's gauges, and the hot-loads (when enabled).
  std::string render(const ServiceStats& service, const HotLoads* hot_loads) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int64_t> requests_;    // (route, status) -> count
  std::map<std::string, std::pair<double, int64_t>> latency_;  // route -> (seconds summed, count)
  std::atomic<int64_t> prompt_tokens_{0}, completion_tokens_{0}, disconnects_{0};
};

}  // namespace flywheel
