#include "core/utc_time.h"

#include <cstdio>
#include <ctime>

namespace flywheel {
namespace {

timespec now_realtime(std::tm* utc) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  gmtime_r(&now.tv_sec, utc);
  return now;
}

}  // namespace

std::string utc_iso8601_now() {
  std::tm utc{};
  now_realtime(&utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::string utc_stamp_ms() {
  std::tm utc{};
  const timespec now = now_realtime(&utc);
  char date[32], text[48];
  std::strftime(date, sizeof(date), "%Y%m%d-%H%M%S", &utc);
  std::snprintf(text, sizeof(text), "%s.%03ld", date, now.tv_nsec / 1000000);
  return text;
}

}  // namespace flywheel
