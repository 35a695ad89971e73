// UTC timestamps, the two forms Flywheel writes: ISO 8601 in records (lock holders, status.json)
// and a sortable, filename-safe form with milliseconds in names (run names, rolled-back-<time>/).
#pragma once

#include <string>

namespace flywheel {

std::string utc_iso8601_now();  // "2026-12-01T12:00:00Z"
std::string utc_stamp_ms();     // "20261201-120000.123"

}  // namespace flywheel
