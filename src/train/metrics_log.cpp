#include "train/metrics_log.h"

#include "core/error.h"

namespace flywheel {

MetricsLog::MetricsLog(const std::string& path) : path_(path), out_(path, std::ios::app) {
  FW_CHECK(out_, "cannot open metrics file '", path, "' for appending");
}

void MetricsLog::append(const nlohmann::json& record) {
  out_ << record.dump() << '\n';
  out_.flush();
  FW_CHECK(out_, "writing to metrics file '", path_, "' failed (disk full?)");
}

}  // namespace flywheel
