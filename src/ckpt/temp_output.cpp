#include "ckpt/temp_output.h"

#include <unistd.h>

#include <cstring>
#include <utility>

#include "ckpt/durable_fs.h"
#include "core/error.h"

namespace flywheel {
namespace {

// unlink(2) is async-signal-safe.
void unlink_file(const char* path) { ::unlink(path); }

}  // namespace

TemporaryOutput::TemporaryOutput(std::string final_path)
    : final_(std::move(final_path)), tmp_(final_ + ".tmp"), cleanup_(unlink_file, tmp_.c_str()) {}

TemporaryOutput::~TemporaryOutput() {
  if (!committed_) ::unlink(tmp_.c_str());  // a failed command: nothing of it stays behind
}

void TemporaryOutput::commit() {
  fsync_file(tmp_);
  rename_durably(tmp_, final_);
  committed_ = true;  // only now: a signal before the rename must still remove the temporary file
  cleanup_.disarm();
}

}  // namespace flywheel
