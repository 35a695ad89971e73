#include "train/run_status.h"

#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ckpt/durable_fs.h"
#include "core/log.h"
#include "core/signals.h"
#include "core/utc_time.h"

namespace flywheel {
namespace {

int64_t integer_or_zero(const nlohmann::json& record, const char* key) {
  return record.contains(key) && record[key].is_number_integer() ? record[key].get<int64_t>() : 0;
}

std::string string_or_empty(const nlohmann::json& record, const char* key) {
  return record.contains(key) && record[key].is_string() ? record[key].get<std::string>() : std::string();
}

}  // namespace

void write_run_status(const std::filesystem::path& dir, RunStatus status) {
  status.since = utc_iso8601_now();
  nlohmann::json record = {
      {"state", status.state}, {"step", status.step}, {"train_steps", status.train_steps}, {"since", status.since}};
  if (status.exit_code) record["exit_code"] = *status.exit_code;
  if (!status.signal.empty()) record["signal"] = status.signal;
  if (!status.detail.empty()) record["detail"] = status.detail;
  try {
    replace_file_atomically((dir / kRunStatusFile).string(), record.dump() + "\n");
  } catch (const std::exception& e) {
    log_warn("could not record the run's state in ", (dir / kRunStatusFile).string(), ": ", e.what());
  }
}

std::optional<RunStatus> read_run_status(const std::filesystem::path& dir) {
  std::ifstream in(dir / kRunStatusFile);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  const nlohmann::json record = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (!record.is_object() || !record.contains("state") || !record["state"].is_string()) return std::nullopt;
  RunStatus status;
  status.state = record["state"].get<std::string>();
  status.step = integer_or_zero(record, "step");
  status.train_steps = integer_or_zero(record, "train_steps");
  status.since = string_or_empty(record, "since");
  if (record.contains("exit_code") && record["exit_code"].is_number_integer())
    status.exit_code = record["exit_code"].get<int>();
  status.signal = string_or_empty(record, "signal");
  status.detail = string_or_empty(record, "detail");
  return status;
}

std::string run_state_of_exit(int code) {
  if (code == kExitOk) return "finished";
  if (code == kExitPreempted) return "preempted";
  if (code == kExitCheckpointFailed) return "checkpoint_failed";
  return "failed";
}

}  // namespace flywheel
