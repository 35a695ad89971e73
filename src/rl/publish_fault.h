// Failure-path tests only: FLYWHEEL_CORRUPT_PUBLISH=<step> flips one byte of the snapshot file the
// trainer publishes for that step, after it is committed and before the replicas are told, so the
// replicas' checksum / fallback path runs inside a real job (tests/rl/corrupt_delta.sh).
#pragma once

#include "serve/snapshot_publisher.h"

namespace flywheel {

void maybe_corrupt_published(const PublishInfo& info);

}  // namespace flywheel
