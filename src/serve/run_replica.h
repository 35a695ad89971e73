// The serving rank's main loop: messages from trainer rank 0 in, rollouts and load reports out.
#pragma once

#include <string>

#include "comm/comm.h"
#include "serve/replica.h"

namespace flywheel {

// Serves until trainer rank 0 of `world` sends kTagShutdown. Blocks in a receive only when there is
// nothing to decode and no swap due, so new requests and snapshot notices are picked up between
// decode steps.
void run_replica(const ReplicaOptions& options, Comm& world);

}  // namespace flywheel
