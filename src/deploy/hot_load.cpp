#include "deploy/hot_load.h"

#include "core/error.h"
#include "core/log.h"
#include "deploy/openai_protocol.h"
#include "serve/replica.h"

namespace flywheel {
namespace {

constexpr int kLedgerReplica = 0;  // the ledger's replica field: this server is one replica

}  // namespace

HotLoader::HotLoader(std::string publish_dir, DecodeEngine& engine, GenerationService& service, std::string ledger_path)
    : publish_dir_(std::move(publish_dir)),
      engine_(engine),
      service_(service),
      loader_(std::make_unique<SnapshotLoader>(publish_dir_, ServeDtype::kFp32)),
      weights_(parameter_tensors(engine.model().params())) {
  if (!ledger_path.empty()) file_ = std::make_unique<Ledger>(ledger_path);
}

void HotLoader::record(nlohmann::json event) {
  if (!event.contains("time")) event["time"] = utc_time_iso8601();
  std::lock_guard lock(ledger_mutex_);
  if (file_) file_->append(event);
  events_.push_back(std::move(event));
}

nlohmann::json HotLoader::load(int64_t step, GenerationService::SwapMode mode) {
  std::unique_lock busy(load_mutex_, std::try_to_lock);
  if (!busy.owns_lock())
    throw ApiError(409, "invalid_request_error", "another hot-load is in progress: retry when it is done", "",
                   "hot_load_in_progress");
  LoadInfo info;
  std::string failure;
  service_.swap_weights(mode, [&](DecodeEngine& engine) {
    try {
      info = loader_->load(step, weights_);
      engine.set_snapshot_step(info.step);
      loaded_step_ = info.step;
    } catch (const std::exception& e) {  // no usable snapshot: the weights are as they were
      failure = e.what();
    }
  });
  if (!failure.empty()) {
    nlohmann::json event = ledger_failure_event(step, kLedgerReplica, failure);
    event["mode"] = mode == GenerationService::SwapMode::kSync ? "sync" : "async";
    record(event);
    {
      std::lock_guard lock(ledger_mutex_);
      ++failures_;
    }
    throw ApiError(400, "invalid_request_error", "hot-load of step " + std::to_string(step) + " failed: " + failure,
                   "step", "snapshot_unusable");
  }
  nlohmann::json event = ledger_event(info, kLedgerReplica);
  event["mode"] = mode == GenerationService::SwapMode::kSync ? "sync" : "async";
  record(event);
  {
    std::lock_guard lock(ledger_mutex_);
    ++loads_;
  }
  log_info("serve: hot-loaded step ", info.step, " (", event["kind"].get<std::string>(), ", ", info.ms, " ms",
           info.fell_back ? ", fell back: " + info.reason : std::string(), ")");
  return event;
}

nlohmann::json HotLoader::ledger() const {
  std::lock_guard lock(ledger_mutex_);
  return {{"object", "list"}, {"data", events_}, {"loaded_step", loaded_step_.load()}};
}

void HotLoader::reset() {
  std::lock_guard busy(load_mutex_);
  std::lock_guard lock(ledger_mutex_);
  events_.clear();
  loader_ = std::make_unique<SnapshotLoader>(publish_dir_, ServeDtype::kFp32);  // nothing known loaded
  loaded_step_ = -1;
}

int64_t HotLoader::loads() const {
  std::lock_guard lock(ledger_mutex_);
  return loads_;
}

int64_t HotLoader::failures() const {
  std::lock_guard lock(ledger_mutex_);
  return failures_;
}

}  // namespace flywheel
