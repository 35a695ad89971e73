#include "core/log.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace flywheel {
namespace {
int g_rank = -1;
LogLevel g_level = LogLevel::kInfo;
bool g_all_ranks = false;
std::mutex g_mutex;

const char* level_tag(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "?";
}
}  // namespace

void configure_logging(int rank, LogLevel level, bool all_ranks) {
  g_rank = rank;
  g_level = level;
  g_all_ranks = all_ranks;
}

LogLevel log_level_from_environment() {
  const char* text = std::getenv("FLYWHEEL_LOG");
  if (text == nullptr || *text == '\0') return LogLevel::kInfo;
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError})
    if (std::strcmp(text, level_tag(level)) == 0) return level;
  std::fprintf(stderr,
               "flywheel: FLYWHEEL_LOG = '%s' is not a log level (allowed: debug, info, warn, error); using info\n",
               text);
  return LogLevel::kInfo;
}

namespace {
void print_line(LogLevel level, const std::string& message) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm_utc{};
  gmtime_r(&now, &tm_utc);
  char stamp[32];
  std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm_utc);
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_rank >= 0)
    std::fprintf(stderr, "[%s r%d %s] %s\n", stamp, g_rank, level_tag(level), message.c_str());
  else
    std::fprintf(stderr, "[%s %s] %s\n", stamp, level_tag(level), message.c_str());
  std::fflush(stderr);
}
}  // namespace

void log_line(LogLevel level, const std::string& message) {
  if (level < g_level) return;
  if (level <= LogLevel::kInfo && g_rank > 0 && !g_all_ranks) return;
  print_line(level, message);
}

void log_rank_line(const std::string& message) {
  if (LogLevel::kInfo >= g_level) print_line(LogLevel::kInfo, message);
}

std::string format_duration(double seconds) {
  char text[32];
  if (!(seconds >= 0)) return "?";
  if (seconds < 60) {
    std::snprintf(text, sizeof(text), "%.1fs", seconds);
  } else if (seconds < 3600) {
    const int s = static_cast<int>(seconds);
    std::snprintf(text, sizeof(text), "%dm%02ds", s / 60, s % 60);
  } else {
    const int m = static_cast<int>(seconds / 60);
    std::snprintf(text, sizeof(text), "%dh%02dm", m / 60, m % 60);
  }
  return text;
}

}  // namespace flywheel
