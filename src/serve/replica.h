// One serving replica: a full copy of the model in the decode engine, its weights stored in the
// serve dtype (fp32, or bf16 in 2 bytes a parameter), fed with request batches and
// snapshot notices, swapping weights in by hot-load (serve/snapshot_loader.h) under a swap policy.
//
// Swap policies (rl.swap):
//   async  a new snapshot is loaded between two decode steps; sequences in flight continue on the new
//          weights, so one sequence can span snapshots (each token records the step it was sampled
//          under: GenerationResult::snapshot_steps).
//   sync   admission stops, the sequences in flight finish on the old weights, then the swap happens
//          and waiting sequences start on the new ones; no sequence spans two snapshots.
// Either way nothing is decoded before the first snapshot is loaded.
//
// ReplicaServer holds no communicator: run_replica (serve/run_replica.h) moves messages in and out,
// and tests drive the same object directly with a scripted order of events.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "serve/replica_protocol.h"
#include "serve/decode_engine.h"
#include "serve/ledger.h"
#include "serve/snapshot_loader.h"

namespace flywheel {

// Ids of requests from a replica's own clients (its OpenAI endpoint) start here; the trainer's are below.
inline constexpr int64_t kClientRequestIdBase = int64_t{1} << 62;

struct ReplicaOptions {
  ModelConfig model;
  int64_t max_batch = 32;
  ServeDtype dtype = ServeDtype::kFp32;
  bool async_swap = false;
  std::string publish_dir;  // where the trainer publishes snapshots
  std::string ledger_path;  // ledger.jsonl (empty: no ledger)
  int replica = 0;          // index among the replicas (for the ledger and messages)
};

class ReplicaServer {
 public:
  explicit ReplicaServer(const ReplicaOptions& options);

  void add_batch(GenerateMessage batch);
  void notify_snapshot(int64_t step);  // publish/ now holds `step`; swapped in under the policy

  struct Progress {
    std::vector<ResultsMessage> finished;  // request batches whose every sequence is done
    std::vector<LoadedMessage> loads;      // snapshots swapped in during this call
    std::vector<GenerationResult> client_results;  // finished requests of ids >= kClientRequestIdBase
    bool stepped = false;                          // the engine stepped (engine().sampled() is this call's)
  };
  // One unit of work: a due swap, then one engine step (admission + one decode step).
  Progress pump();
  bool has_work() const;
  int64_t loaded_step() const { return loader_.loaded_step(); }
  DecodeEngine& engine() { return engine_; }

 private:
  LoadedMessage swap_in(int64_t step);
  void collect(std::vector<GenerationResult> done, Progress& progress);

  ReplicaOptions options_;
  DecodeEngine engine_;
  SnapshotLoader loader_;
  std::unique_ptr<Ledger> ledger_;
  std::vector<NamedTensor> weights_;  // views of the engine's weights, in the serve dtype
  int64_t pending_step_ = -1;    // newest snapshot announced
  int64_t attempted_step_ = -1;  // newest snapshot a swap was tried for (a failed one is not retried)

  struct OpenBatch {
    int64_t step = 0;
    size_t expected = 0;
    std::vector<GenerationResult> results;
  };
  std::map<int64_t, OpenBatch> open_batches_;  // by RL step
  std::map<int64_t, int64_t> batch_of_request_;  // request id -> RL step
  int64_t tokens_at_last_report_ = 0;
  double busy_at_last_report_ = 0;
};

// Typed views of every parameter of a single-rank model, in registration order, for snapshots.
std::vector<NamedTensor> parameter_tensors(const ParameterSet& params);

}  // namespace flywheel
