#include "core/signals.h"

#include <csignal>

namespace flywheel {
namespace {
volatile std::sig_atomic_t g_signal = 0;  // written only by the handler: async-signal-safe

void on_preemption_signal(int signal) { g_signal = signal; }
}  // namespace

void install_preemption_handlers() {
  struct sigaction action = {};
  action.sa_handler = on_preemption_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // blocking calls (file I/O, MPI progress) resume after the handler
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGUSR1, &action, nullptr);
}

bool preemption_requested() { return g_signal != 0; }

const char* preemption_signal_name() {
  switch (g_signal) {
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "";
  }
}

}  // namespace flywheel
