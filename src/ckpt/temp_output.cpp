#include "ckpt/temp_output.h"

#include <unistd.h>

#include <cstring>

#include "ckpt/durable_fs.h"
#include "core/error.h"

namespace flywheel {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

// What the handler may touch: a path kept alive by the TemporaryOutput, whether it is armed, and the
// actions it replaced.
const char* volatile g_path = nullptr;
volatile sig_atomic_t g_armed = 0;
struct sigaction g_previous[std::size(kSignals)] = {};

// unlink(2), sigaction(2) and raise(3) are async-signal-safe. SA_RESETHAND has restored the default
// action; an outer cleanup handler that was installed before us (a TemporaryDirectory holding this
// file, ckpt/temp_dir.h) is put back instead, so that it runs too. The signal is blocked inside the
// handler, so the raised one is delivered as the handler returns: to that handler, or by the default
// action, which ends the process.
extern "C" void remove_and_reraise(int sig) {
  if (g_armed) ::unlink(g_path);
  for (size_t i = 0; i < std::size(kSignals); ++i)
    if (kSignals[i] == sig && !(g_previous[i].sa_flags & SA_SIGINFO) && g_previous[i].sa_handler != SIG_DFL &&
        g_previous[i].sa_handler != SIG_IGN)
      ::sigaction(sig, &g_previous[i], nullptr);
  ::raise(sig);
}

}  // namespace

TemporaryOutput::TemporaryOutput(std::string final_path) : final_(std::move(final_path)), tmp_(final_ + ".tmp") {
  FW_CHECK(g_path == nullptr, "only one TemporaryOutput at a time (", tmp_, " while ", g_path, " is active)");
  g_path = tmp_.c_str();
  g_armed = 1;
  struct sigaction action = {};
  action.sa_handler = remove_and_reraise;
  action.sa_flags = SA_RESETHAND;
  sigemptyset(&action.sa_mask);
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    ::sigaction(kSignals[i], &action, &previous_[i]);
    g_previous[i] = previous_[i];
  }
}

TemporaryOutput::~TemporaryOutput() {
  if (!committed_) ::unlink(tmp_.c_str());  // a failed command: nothing of it stays behind
  g_armed = 0;
  for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &previous_[i], nullptr);
  g_path = nullptr;
}

void TemporaryOutput::commit() {
  fsync_file(tmp_);
  rename_durably(tmp_, final_);
  committed_ = true;  // only now: a signal before the rename must still remove the temporary file
  g_armed = 0;
}

}  // namespace flywheel
