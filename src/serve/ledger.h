// The hot-load ledger: RUN_DIR/ledger.jsonl, one JSON object per line, appended by the trainer
// ("published") and by every serving replica ("loaded", "fell_back", "failed"); `flywheel-ckpt
// ledger RUN_DIR` shows it. Fields follow tools/ckpt/ledger.cpp: "event" (string) and "step"
// (integer >= 0) are required; "replica", "ms", "bytes", "reason", "time" (UTC ISO 8601) are
// optional; we add "kind" (full | delta | full+deltas), "base_step", "checksum" (16 hex digits)
// and a few more, which the reader ignores.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "serve/snapshot_loader.h"
#include "serve/snapshot_publisher.h"

namespace flywheel {

// Several processes (and threads) may append to the same ledger: each line is one write() on an
// O_APPEND descriptor, which Linux performs atomically for regular files, so lines never interleave.
class Ledger {
 public:
  explicit Ledger(std::string path);  // opens (creating) the file; throws naming it
  ~Ledger();
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;

  // Adds "time" if missing; throws when "event" / "step" are missing or of the wrong type (a line
  // the reader would refuse), or when the write fails or is short.
  void append(nlohmann::json event);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// "2026-11-22T22:25:18.123Z"
std::string utc_time_iso8601();

// {"event": "published", "step", "kind", "base_step" (delta), "bytes" (file), "full_bytes", "ms",
//  "checksum", "path"}
nlohmann::json ledger_event(const PublishInfo& info);
// {"event": "loaded" | "fell_back", "step" (now loaded), "replica", "ms", "bytes" (read), "kind",
//  "requested_step", "full_step" (when a full was loaded), "deltas_replayed", "reason" (fell_back)}
nlohmann::json ledger_event(const LoadInfo& info, int replica);
// {"event": "failed", "step" (requested), "replica", "reason"}: a load that threw.
nlohmann::json ledger_failure_event(int64_t step, int replica, const std::string& reason);

}  // namespace flywheel
