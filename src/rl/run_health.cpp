#include "rl/run_health.h"

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "core/log.h"

namespace flywheel {
namespace {

std::string scientific(double v, int digits) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*e", digits, v);
  return text;
}

std::string plural(int64_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// "replica 0 fell back loading snapshot 6: <what failed>; loaded step-00000004.full and replayed 1
// delta(s), so it serves step 5 instead". Of the loader's reason (its clauses are joined by "; ",
// ledger.jsonl keeps it whole) the line shows the first failure and what was loaded instead.
std::string fallback_text(const LoadedMessage& load) {
  std::vector<std::string> clauses;
  for (size_t begin = 0; begin <= load.reason.size();) {
    const size_t end = std::min(load.reason.find("; ", begin), load.reason.size());
    clauses.push_back(load.reason.substr(begin, end - begin));
    begin = end + 2;
  }
  std::string why = clauses.front();
  for (size_t i = 1; i < clauses.size(); ++i)
    if (clauses[i].rfind("loaded ", 0) == 0) why += "; " + clauses[i];
  const std::string outcome = load.step < load.requested ? detail::concat(", so it serves step ", load.step, " instead")
                                                         : std::string(", which reached it");
  return detail::concat("replica ", load.replica, " fell back loading snapshot ", load.requested, ": ", why, outcome);
}

}  // namespace

void RunHealth::record(int64_t step, const std::vector<LoadedMessage>& fallbacks, double k3, double max_abs_d) {
  ++steps_;
  for (const LoadedMessage& load : fallbacks) {
    ++fallbacks_;
    ++fallbacks_by_replica_[load.replica];
    log_warn("step ", step + 1, ": ", fallback_text(load), "; ", plural(fallbacks_, "hot-load fallback",
             "hot-load fallbacks"),
             " so far");
  }
  if (!fallbacks.empty()) ++fallback_steps_;
  if (k3 > worst_k3_ || worst_step_ < 0) {
    worst_k3_ = k3;
    worst_d_ = max_abs_d;
    worst_step_ = step;
  }
  if (!exact_ || (k3 == 0 && max_abs_d == 0)) return;
  ++inexact_steps_;
  log_warn("step ", step + 1, ": exact mode (rl.serve_dtype = fp32) but k3 = ", scientific(k3, 2), " (max|d| ",
           scientific(max_abs_d, 1), "): the replica served other weights than the trainer's",
           fallbacks.empty() ? " (no hot-load fell back: train/serve parity broke)" : " (it fell back, above)", "; ",
           plural(inexact_steps_, "such step", "such steps"), " so far");
}

std::string RunHealth::summary() const {
  std::string text = detail::concat("flywheel summary over ", plural(steps_, "RL step", "RL steps"), ": ");
  if (fallbacks_ == 0) {
    text += "every hot-load direct";
  } else {
    std::string by_replica;
    for (const auto& [replica, n] : fallbacks_by_replica_)
      by_replica += detail::concat(by_replica.empty() ? "" : ", ", "replica ", replica, ": ", n);
    text += detail::concat(plural(fallbacks_, "hot-load fallback", "hot-load fallbacks"), " (", by_replica, ") in ",
                           plural(fallback_steps_, "step", "steps"));
  }
  if (exact_ && inexact_steps_ == 0) return text + "; k3 = 0 at every step (exact mode)";
  if (exact_) text += detail::concat("; ", plural(inexact_steps_, "step", "steps"), " with k3 != 0 in exact mode");
  if (worst_step_ >= 0)
    text += detail::concat("; worst k3 ", scientific(worst_k3_, 2), " (max|d| ", scientific(worst_d_, 1), ") at step ",
                           worst_step_ + 1);
  return text + (troubled() ? " (per step: metrics.jsonl; per load: ledger.jsonl)" : "");
}

void RunHealth::log_summary() const {
  if (steps_ == 0) return;
  if (troubled())
    log_warn(summary());
  else
    log_info(summary());
}

}  // namespace flywheel
