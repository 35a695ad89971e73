#include "serve/ledger.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include "ckpt/checksum.h"
#include "core/error.h"

namespace flywheel {

Ledger::Ledger(std::string path) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  FW_CHECK(fd_ >= 0, "cannot open hot-load ledger ", path_, " for appending: ", std::strerror(errno));
}

Ledger::~Ledger() {
  if (fd_ >= 0) ::close(fd_);
}

void Ledger::append(nlohmann::json event) {
  FW_CHECK(event.is_object() && event.contains("event") && event["event"].is_string() &&
               !event["event"].get<std::string>().empty(),
           "ledger ", path_, ": an event needs \"event\" (a non-empty string); got ", event.dump());
  FW_CHECK(event.contains("step") && event["step"].is_number_integer() && event["step"].get<int64_t>() >= 0,
           "ledger ", path_, ": an event needs \"step\" (an integer >= 0); got ", event.dump());
  if (!event.contains("time")) event["time"] = utc_time_iso8601();
  // Invalid UTF-8 in a reason (a file name) is replaced, not thrown: the event still gets recorded.
  const std::string line = event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  ssize_t n;
  do {
    n = ::write(fd_, line.data(), line.size());  // one write: O_APPEND makes it atomic
  } while (n < 0 && errno == EINTR);
  FW_CHECK(n >= 0, "appending to hot-load ledger ", path_, " failed: ", std::strerror(errno));
  FW_CHECK(static_cast<size_t>(n) == line.size(), "appending to hot-load ledger ", path_, " wrote ", n, " of ",
           line.size(), " bytes (disk full?): the last line is incomplete");
}

std::string utc_time_iso8601() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
  return text;
}

nlohmann::json ledger_event(const PublishInfo& info) {
  nlohmann::json j = {{"event", "published"},      {"step", info.step},
                      {"kind", info.full ? "full" : "delta"}, {"bytes", info.file_bytes},
                      {"full_bytes", info.full_bytes}, {"ms", info.ms},
                      {"checksum", hex64(info.checksum)},     {"path", info.path}};
  if (!info.full) j["base_step"] = info.base_step;
  return j;
}

nlohmann::json ledger_event(const LoadInfo& info, int replica) {
  FW_CHECK(replica >= 0, "ledger event for replica ", replica, ": replicas are numbered from 0");
  const char* kind = info.applied_delta     ? "delta"
                     : info.full_step < 0     ? "unchanged"
                     : info.deltas_replayed > 0 ? "full+deltas"
                                                : "full";
  nlohmann::json j = {{"event", info.fell_back ? "fell_back" : "loaded"},
                      {"step", info.step},
                      {"replica", replica},
                      {"ms", info.ms},
                      {"bytes", info.bytes_read},
                      {"kind", kind},
                      {"requested_step", info.requested_step},
                      {"deltas_replayed", info.deltas_replayed}};
  if (info.full_step >= 0) j["full_step"] = info.full_step;
  if (info.fell_back) j["reason"] = info.reason;
  return j;
}

nlohmann::json ledger_failure_event(int64_t step, int replica, const std::string& reason) {
  FW_CHECK(replica >= 0, "ledger event for replica ", replica, ": replicas are numbered from 0");
  return {{"event", "failed"}, {"step", step}, {"replica", replica}, {"reason", reason}};
}

}  // namespace flywheel
