// `flywheel run`'s replicas serving the OpenAI API while the job trains (rl.serve_port, docs/serving.md): replica r
// listens on 127.0.0.1:serve_port + r (0: a free port; the address is logged at start) with the routes of
// `flywheel serve` (deploy/api_server.h) over the replica's own decode engine. An external program generates against
// the live policy: its requests join the rollouts' decode batches between two steps of the replica's loop, and each
// token says which snapshot sampled it. The trainer's swaps apply to them as to the rollouts (rl.swap); hot-loads
// by request are not offered here (the trainer publishes). With FLYWHEEL_API_KEY set, requests need it.
#pragma once

#include "rl/flywheel_spec.h"
#include "serve/run_replica.h"

namespace flywheel {

// The clients of replica `replica`, or null when rl.serve_port is -1.
ReplicaClientsFactory replica_endpoint(const FlywheelSpec& spec, const std::string& run_dir, int replica);

}  // namespace flywheel
