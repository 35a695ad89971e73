// The serving rank's main loop: messages from trainer rank 0 in, rollouts and load reports out.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "comm/comm.h"
#include "serve/replica.h"

namespace flywheel {

// Requests a replica serves besides the trainer's: `flywheel run`'s OpenAI endpoint (rl/replica_endpoint.h). The
// loop lets them into the engine between two pumps and hands them every step's tokens; their ids are
// >= kClientRequestIdBase, so the replica's rollout bookkeeping passes over them.
class ReplicaClients {
 public:
  virtual ~ReplicaClients() = default;
  virtual void admit(DecodeEngine& engine) = 0;  // requests and cancellations that arrived, into the engine
  // After a pump: the step's tokens (when `stepped`) and the client requests that finished.
  virtual void route(const DecodeEngine& engine, const std::vector<GenerationResult>& finished, bool stepped) = 0;
};
// Builds the clients once the replica's engine exists (its weights not loaded yet).
using ReplicaClientsFactory = std::function<std::unique_ptr<ReplicaClients>(DecodeEngine& engine)>;

// Serves until trainer rank 0 of `world` sends kTagShutdown. New requests and snapshot notices are picked up
// between decode steps; with nothing to decode and no swap due it blocks in a receive (with clients it polls every
// millisecond instead, so their requests get in while the trainer is quiet).
void run_replica(const ReplicaOptions& options, Comm& world, const ReplicaClientsFactory& make_clients = nullptr);

}  // namespace flywheel
