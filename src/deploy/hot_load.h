// Hot-loading by request (`flywheel serve --publish-dir DIR`, docs/serving.md): POST /v1/hot_load names a step of a
// publish directory that any trainer writes (Flywheel's own, or `flywheel-ckpt publish`), and the served weights
// become that snapshot under the request's transition mode (deploy/generation_service.h). The snapshot loader's
// rules apply (serve/snapshot_loader.h): a delta applies in place when its base is what is loaded; a wrong base, a
// missing file or a bad checksum falls back to the newest full snapshot and the deltas after it.
//
// The ledger is the history of hot-loads: each load's event (serve/ledger.h: loaded | fell_back | failed, step,
// kind, ms, bytes, reason) kept in memory for GET /v1/ledger and appended to a ledger.jsonl when one is named.
// A reset clears it and forgets what is loaded, so the next snapshot must be a full one (a delta has no known base).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "deploy/generation_service.h"
#include "serve/ledger.h"
#include "serve/snapshot_loader.h"

namespace flywheel {

class HotLoader {
 public:
  // `engine`: the served weights (fp32; the service's engine). `ledger_path`: "" for none.
  HotLoader(std::string publish_dir, DecodeEngine& engine, GenerationService& service, std::string ledger_path);

  // Loads `step` under `mode` and returns the ledger event. Throws ApiError 409 when another hot-load is running,
  // 400 when no usable snapshot exists (the weights are then unchanged; the failure is in the ledger).
  nlohmann::json load(int64_t step, GenerationService::SwapMode mode);
  nlohmann::json ledger() const;  // {"object": "list", "data": [events], "loaded_step"}
  void reset();

  int64_t loads() const;                                       // hot-loads that changed the weights
  int64_t failures() const;                                    // hot-loads that found no usable snapshot
  int64_t loaded_step() const { return loaded_step_.load(); }  // -1: none since the start or the last reset

 private:
  void record(nlohmann::json event);

  std::string publish_dir_;
  DecodeEngine& engine_;
  GenerationService& service_;
  std::unique_ptr<SnapshotLoader> loader_;
  std::vector<NamedTensor> weights_;
  std::unique_ptr<Ledger> file_;
  std::mutex load_mutex_;            // one hot-load at a time
  mutable std::mutex ledger_mutex_;  // the events and counters
  std::vector<nlohmann::json> events_;
  int64_t loads_ = 0, failures_ = 0;
  std::atomic<int64_t> loaded_step_{-1};
};

}  // namespace flywheel
