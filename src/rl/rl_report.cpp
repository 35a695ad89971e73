#include "rl/rl_report.h"

#include <cstdio>

#include <nlohmann/json.hpp>

#include "train/run_support.h"

namespace flywheel {
namespace {

nlohmann::json rl_record(const RlStepReport& r) {
  nlohmann::json j = {{"step", r.step.step + 1},
                      {"phase", "rl"},
                      {"loss", r.step.loss},
                      {"reward_mean", r.rollouts.reward_mean},
                      {"k3", r.parity.k3},
                      {"max_abs_logprob_diff", r.parity.max_abs_d},
                      {"rollout_tokens", r.rollouts.stats.tokens},
                      {"rollout_tokens_per_second", r.rollouts.stats.tokens_per_second},
                      {"spanning_samples", r.rollouts.stats.spanning},
                      {"hotload_ms", r.rollouts.stats.last_load_ms},
                      {"hotload_fell_back", r.rollouts.stats.fell_back},
                      {"lr", r.step.lr},
                      {"grad_norm", r.step.grad_norm},
                      {"step_seconds", r.step.seconds}};
  for (const auto& [name, value] : r.loss.metrics) j[name] = value;
  if (r.published) {
    j["publish_kind"] = r.publish.full ? "full" : "delta";
    j["publish_bytes"] = r.publish.file_bytes;
    j["publish_full_bytes"] = r.publish.full_bytes;
    j["publish_ms"] = r.publish.ms;
  }
  return j;
}

std::string bytes_text(double bytes) {
  char text[32];
  if (bytes >= 1048576.0)
    std::snprintf(text, sizeof(text), "%.1f MiB", bytes / 1048576.0);
  else
    std::snprintf(text, sizeof(text), "%.1f KiB", bytes / 1024.0);
  return text;
}

// "reward 0.430 | k3 0.00e+00 (max|d| 0.0e+00) | loss 0.0079 | delta 1.1 MiB | hot-load 5.0 ms | rollout 7.0k tok/s"
std::string rl_fields(const RlStepReport& r) {
  std::string published = "no publish (last step)";
  if (r.published)
    published = std::string(r.publish.full ? "full " : "delta ") + bytes_text(static_cast<double>(r.publish.file_bytes));
  char fields[320];
  std::snprintf(fields, sizeof(fields),
                "reward %.3f | k3 %.2e (max|d| %.1e) | loss %.4f | %s | hot-load %.1f ms | rollout %s tok/s",
                r.rollouts.reward_mean, r.parity.k3, r.parity.max_abs_d, r.step.loss, published.c_str(),
                r.rollouts.stats.last_load_ms, format_rate(r.rollouts.stats.tokens_per_second).c_str());
  return fields;
}

}  // namespace

StepReport rl_report(const RlStepReport& report) {
  StepReport r;
  r.record = rl_record(report);
  r.seconds = report.step.seconds;
  r.phase = "rl";
  r.fields = rl_fields(report);
  return r;
}

}  // namespace flywheel
