// Cleanup of a command's temporary outputs when SIGINT, SIGTERM or SIGHUP ends it (TemporaryOutput,
// TemporaryDirectory). While a CleanupOnSignal is alive, such a signal runs its action on its path,
// innermost first (a file's before the directory holding it), then the action the signal had before
// the first one was installed: a function handler installed earlier is put back and runs, else the
// default action ends the process, so the exit status still says which signal it was.
//
// Actions run inside the signal handler: they may only make async-signal-safe calls (unlink(2),
// open/getdents64/unlinkat/rmdir, no allocation). Scopes nest (at most kMaxScopes) and must end in
// reverse order; one thread (the tool's main thread) creates them.
#pragma once

#include <signal.h>

namespace flywheel {

class CleanupOnSignal {
 public:
  using Action = void (*)(const char* path);
  static constexpr int kMaxScopes = 4;

  // `path` must stay valid while the scope is alive.
  CleanupOnSignal(Action action, const char* path);
  ~CleanupOnSignal();
  CleanupOnSignal(const CleanupOnSignal&) = delete;
  CleanupOnSignal& operator=(const CleanupOnSignal&) = delete;

  // From now on a signal skips this scope's action (its output was committed); the scope stays.
  void disarm();

 private:
  int depth_ = 0;  // this scope's place on the stack
};

}  // namespace flywheel
