// Logging: one line per event on stderr, prefixed with wall time and rank.
#pragma once

#include <string>

#include "core/error.h"

namespace flywheel {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Set once at start-up (rank < 0: not under MPI). Only rank 0 prints info lines unless
// all_ranks is set; warnings and errors print on every rank.
void configure_logging(int rank, LogLevel level, bool all_ranks = false);
// The level FLYWHEEL_LOG asks for: debug | info | warn | error; unset or empty: info. Another value
// is reported on stderr and read as info (a typo in a variable must not stop a job).
LogLevel log_level_from_environment();
void log_line(LogLevel level, const std::string& message);
// An info line from this rank whatever its number: a rank's own state (a serving replica coming up).
void log_rank_line(const std::string& message);

template <typename... Args>
void log_info(const Args&... args) { log_line(LogLevel::kInfo, detail::concat(args...)); }
template <typename... Args>
void log_warn(const Args&... args) { log_line(LogLevel::kWarn, detail::concat(args...)); }
template <typename... Args>
void log_error(const Args&... args) { log_line(LogLevel::kError, detail::concat(args...)); }
template <typename... Args>
void log_rank_info(const Args&... args) { log_rank_line(detail::concat(args...)); }
template <typename... Args>
void log_debug(const Args&... args) { log_line(LogLevel::kDebug, detail::concat(args...)); }

// "1h02m", "3m05s", "12.3s": for ETAs and elapsed times.
std::string format_duration(double seconds);

}  // namespace flywheel
