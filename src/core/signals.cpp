#include "core/signals.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <ctime>

namespace flywheel {
namespace {
constexpr int kStopSignals[] = {SIGTERM, SIGINT, SIGUSR1};

// Written by the handler, which may run on any thread: lock-free atomics are async-signal-safe.
std::atomic<int> g_signal{0};          // the first stop signal: the flag
std::atomic<long long> g_first_ns{0};  // when it came (CLOCK_MONOTONIC)
// What the first signal's line says happens next (set before the handlers are installed; read by the handler).
const char* g_first_action = kCheckpointAction;
int g_rank = -1;                       // set before the handlers exist
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<long long>::is_always_lock_free);

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "";
  }
}

long long clock_ns(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
}

// One line in core/log.cpp's format ("[12:34:56 r3 warn] ..."), built with no lock, allocation or
// stdio: a signal handler may only call async-signal-safe functions (clock_gettime, write).
class SignalLine {
 public:
  SignalLine() {
    const long long second = clock_ns(CLOCK_REALTIME) / 1'000'000'000LL % 86400;  // UTC, as the log
    text("[").number(second / 3600, 2).text(":").number(second / 60 % 60, 2).text(":").number(second % 60, 2);
    if (g_rank >= 0) text(" r").number(g_rank, 1);
    text(" warn] ");
  }
  SignalLine& text(const char* s) {
    while (*s != '\0' && size_ < sizeof(buffer_) - 1) buffer_[size_++] = *s++;
    return *this;
  }
  SignalLine& number(long long value, int width) {
    char digits[24];
    int n = 0;
    do {
      digits[n++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value > 0 || n < width);
    while (n > 0 && size_ < sizeof(buffer_) - 1) buffer_[size_++] = digits[--n];
    return *this;
  }
  void write() {
    buffer_[size_++] = '\n';
    [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, buffer_, size_);
  }

 private:
  char buffer_[192];
  size_t size_ = 0;
};

void on_stop_signal(int signal) {
  const int saved_errno = errno;
  const long long now = clock_ns(CLOCK_MONOTONIC);
  const char* name = signal_name(signal);
  int none = 0;
  if (g_signal.compare_exchange_strong(none, signal)) {
    g_first_ns.store(now);
    SignalLine().text(name).text(g_first_action).write();
  } else if (const long long first = g_first_ns.load();
             first == 0 || now - first < kRepeatSeconds * 1'000'000'000LL) {
    SignalLine().text(name).text(" again within ").number(kRepeatSeconds, 1).text(" s: the same stop request").write();
  } else {
    SignalLine()
        .text(name)
        .text(" again: stopping at once; the last committed checkpoint is intact (exit ")
        .number(kExitStopped, 1)
        .text(")")
        .write();
    _exit(kExitStopped);
  }
  errno = saved_errno;
}
}  // namespace

void install_preemption_handlers(int rank, const char* first_action) {
  g_rank = rank;
  g_first_action = first_action;
  struct sigaction action = {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  for (const int s : kStopSignals) sigaddset(&action.sa_mask, s);  // one stop handler at a time per thread
  action.sa_flags = SA_RESTART;  // blocking calls (file I/O, MPI progress) resume after the handler
  for (const int s : kStopSignals) sigaction(s, &action, nullptr);
}

bool preemption_requested() { return g_signal.load() != 0; }

const char* preemption_signal_name() { return signal_name(g_signal.load()); }

}  // namespace flywheel
