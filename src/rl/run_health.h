// What makes a flywheel run's numbers suspect, said on the console when it happens and summed up
// when the run ends (trainer rank 0). Two things:
//   - a hot-load that fell back (a corrupt, truncated or missing delta): the replica loaded an older
//     full snapshot and replayed what it could, so it may serve older weights than the trainer's;
//   - in exact mode (rl.serve_dtype = fp32) a train/serve k3 or max |d| other than 0: the logprobs
//     the replica sampled with are not the trainer's, so "exact" no longer holds for that step.
// metrics.jsonl and ledger.jsonl record the same facts per step and per load; these lines are for
// the person watching the console, who would otherwise see a k3 of 1.9e-06 scroll by unremarked.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "serve/replica_protocol.h"

namespace flywheel {

class RunHealth {
 public:
  explicit RunHealth(bool exact) : exact_(exact) {}

  // One RL step (0-based; lines say step + 1, as the progress line does): a warning per fallback and
  // one when exact parity failed, each with the count so far.
  void record(int64_t step, const std::vector<LoadedMessage>& fallbacks, double k3, double max_abs_d);

  // The run's account: fallbacks per replica, steps with k3 != 0 in exact mode, the worst k3.
  std::string summary() const;
  bool troubled() const { return fallbacks_ > 0 || inexact_steps_ > 0; }
  void log_summary() const;  // a warning when troubled(), else an info line

 private:
  bool exact_;
  int64_t steps_ = 0, fallbacks_ = 0, fallback_steps_ = 0, inexact_steps_ = 0;
  std::map<int, int64_t> fallbacks_by_replica_;
  double worst_k3_ = 0, worst_d_ = 0;
  int64_t worst_step_ = -1;
};

}  // namespace flywheel
