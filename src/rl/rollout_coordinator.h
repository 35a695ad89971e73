// Trainer rank 0's side of the rollout traffic: turns an RL step into prompts for the replicas,
// collects the samples, and scores them.
//
// Prompts of RL step s are those of rl/rl_prompts.h (task examples or chat prompt records), i < P =
// rl.prompts_per_step, each sampled G = rl.group_size times with seed random_u64({seed, kSampling, s,
// i * G + g}). Every prompt's group goes to one replica (prompt i to replica i mod R), so rollouts are
// a function of (weights, seed, step) and never of how many replicas there are or how they batch.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "data/tasks.h"
#include "data/text_codec.h"
#include "rl/flywheel_spec.h"
#include "rl/rl_prompts.h"
#include "serve/replica_protocol.h"

namespace flywheel {

struct RolloutSample {
  int64_t prompt_index = 0;  // i within the step
  int64_t sample = 0;        // g within the group
  TaskExample example;       // the prompt's text and answer (rl/rl_prompts.h)
  std::vector<int32_t> prompt_tokens;  // what generation started from
  std::optional<ChatPrompt> chat;      // the prompt file's record, for chat prompts
  GenerationResult result;
  double reward = 0;
};

struct RolloutStats {
  int64_t tokens = 0;            // generated tokens of the step
  double decode_seconds = 0;     // summed over replicas
  double tokens_per_second = 0;  // tokens / (max over replicas of decode seconds)
  int64_t spanning = 0;          // samples whose tokens came from more than one snapshot
  double last_load_ms = 0;       // slowest hot-load reported since the previous step
  int64_t fell_back = 0;         // hot-loads that fell back to a full snapshot since the previous step
  bool replica_behind = false;   // a replica could not reach the announced step (the next publish is full)
  std::vector<LoadedMessage> fallbacks;  // those hot-loads, with their reasons
};

class RolloutCoordinator {
 public:
  RolloutCoordinator(const FlywheelSpec& spec, Comm& world);

  void request(int64_t step);                 // sends step's prompts to the replicas
  void notify_snapshot(int64_t step);         // tells every replica that publish/ holds `step`
  std::vector<RolloutSample> collect(int64_t step, RolloutStats& stats);  // waits for every sample of `step`
  void drain();                               // collects (and drops) every step still requested
  void shutdown();                            // ends every replica's loop
  int64_t rows_per_step() const { return prompts_ * group_; }

 private:
  int replica_rank(int64_t prompt_index) const;
  void receive_one();  // one message from any replica, filed by kind

  const FlywheelSpec& spec_;
  Comm& world_;
  std::shared_ptr<const TextCodec> codec_;  // prompts and stop tokens
  RlPrompts stream_;
  int64_t prompts_, group_;
  int trainers_, replicas_;
  std::vector<int64_t> requested_;  // steps requested and not collected
  std::vector<ResultsMessage> arrived_;
  std::vector<LoadedMessage> loads_;
};

}  // namespace flywheel
