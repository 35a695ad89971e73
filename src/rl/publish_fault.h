// Failure-path tests only: FLYWHEEL_CORRUPT_PUBLISH=<step> flips one byte of the snapshot file the
// trainer publishes for that step (=delta: of every delta it publishes), after it is committed and
// before the replicas are told, so the replicas' checksum / fallback path runs inside a real job
// (tests/rl/flywheel.sh, scenarios corrupt_delta and corrupt_every_delta).
#pragma once

#include <string>

#include "serve/snapshot_publisher.h"

namespace flywheel {

void maybe_corrupt_published(const PublishInfo& info);

// XORs one byte 16 bytes before the end of `path` (payload or trailing checksum of a snapshot).
void flip_byte_near_end(const std::string& path);

}  // namespace flywheel
