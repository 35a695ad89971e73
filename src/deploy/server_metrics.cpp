#include "deploy/server_metrics.h"

#include <sstream>

namespace flywheel {

void ServerMetrics::count_request(const std::string& route, int status, double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
  auto& [sum, count] = latency_[route];
  sum += seconds;
  ++count;
}

void ServerMetrics::count_tokens(int64_t prompt, int64_t completion) {
  prompt_tokens_ += prompt;
  completion_tokens_ += completion;
}

std::string ServerMetrics::render(const ServiceStats& s, const HotLoads* hot) const {
  std::ostringstream out;
  auto metric = [&](const char* name, const char* type, const char* help) {
    out << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  // A metric without labels: its description and its one value.
  auto scalar = [&](const char* name, const char* type, const char* help, auto value) {
    metric(name, type, help);
    out << name << " " << value << "\n";
  };
  {
    std::lock_guard lock(mutex_);
    metric("flywheel_requests_total", "counter",
           "HTTP requests answered, by route and status code (499: the client went away).");
    for (const auto& [key, n] : requests_)
      out << "flywheel_requests_total{route=\"" << key.first << "\",code=\"" << key.second << "\"} " << n << "\n";
    metric("flywheel_request_duration_seconds", "summary", "Time from request to the end of its response.");
    for (const auto& [route, v] : latency_) {
      out << "flywheel_request_duration_seconds_sum{route=\"" << route << "\"} " << v.first << "\n";
      out << "flywheel_request_duration_seconds_count{route=\"" << route << "\"} " << v.second << "\n";
    }
  }
  scalar("flywheel_prompt_tokens_total", "counter", "Prompt tokens of the completion requests served.", prompt_tokens_.load());
  scalar("flywheel_completion_tokens_total", "counter", "Tokens generated and sent to clients.", completion_tokens_.load());
  scalar("flywheel_client_disconnects_total", "counter", "Requests whose client went away before the end.", disconnects_.load());
  scalar("flywheel_generated_tokens_total", "counter", "Tokens the decode engine sampled (cancelled ones included).", s.tokens_generated);
  scalar("flywheel_decode_steps_total", "counter", "Batched decode steps.", s.steps);
  scalar("flywheel_decode_busy_seconds_total", "counter", "Seconds the decode engine spent stepping.", s.busy_seconds);
  scalar("flywheel_queue_depth", "gauge", "Sequences waiting for a batch slot.", s.waiting);
  scalar("flywheel_active_sequences", "gauge", "Sequences in the decode batch.", s.active);
  scalar("flywheel_max_batch", "gauge", "Batch slots of the decode engine.", s.max_batch);
  if (hot) {
    metric("flywheel_hot_loads_total", "counter", "Hot-loads by result: loaded (the weights changed) or failed.");
    out << "flywheel_hot_loads_total{result=\"loaded\"} " << hot->loads << "\n";
    out << "flywheel_hot_loads_total{result=\"failed\"} " << hot->failures << "\n";
    scalar("flywheel_loaded_snapshot_step", "gauge", "The snapshot step served (-1: none hot-loaded).", hot->loaded_step);
  }
  return out.str();
}

}  // namespace flywheel
