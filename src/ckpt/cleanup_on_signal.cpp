#include "ckpt/cleanup_on_signal.h"

#include <iterator>

#include "core/error.h"

namespace flywheel {
namespace {

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};

// What the handler may touch: the live scopes (entries [0, g_depth)) and the actions it replaced.
struct Scope {
  CleanupOnSignal::Action action;
  const char* path;
};
Scope g_scopes[CleanupOnSignal::kMaxScopes] = {};
volatile sig_atomic_t g_depth = 0;
struct sigaction g_previous[std::size(kSignals)] = {};

// Every action, innermost first; then SA_RESETHAND has restored the default action, or the previous
// function handler is put back; the raised signal is blocked inside the handler and delivered as it
// returns, to that handler or by the default action. sigaction(2) and raise(3) are async-signal-safe.
extern "C" void clean_up_and_reraise(int sig) {
  for (int i = g_depth - 1; i >= 0; --i) g_scopes[i].action(g_scopes[i].path);
  g_depth = 0;
  for (size_t i = 0; i < std::size(kSignals); ++i)
    if (kSignals[i] == sig && !(g_previous[i].sa_flags & SA_SIGINFO) && g_previous[i].sa_handler != SIG_DFL &&
        g_previous[i].sa_handler != SIG_IGN)
      ::sigaction(sig, &g_previous[i], nullptr);
  ::raise(sig);
}

void nothing(const char*) {}

}  // namespace

CleanupOnSignal::CleanupOnSignal(Action action, const char* path) {
  FW_CHECK(g_depth < kMaxScopes, "more than ", kMaxScopes, " nested cleanup scopes (", path, ")");
  depth_ = g_depth;
  g_scopes[depth_] = {action, path};  // written before the scope counts, so the handler never sees half of it
  if (depth_ == 0) {
    struct sigaction handler = {};
    handler.sa_handler = clean_up_and_reraise;
    handler.sa_flags = SA_RESETHAND;
    sigemptyset(&handler.sa_mask);
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &handler, &g_previous[i]);
  }
  g_depth = depth_ + 1;
}

void CleanupOnSignal::disarm() { g_scopes[depth_].action = nothing; }  // one pointer store

CleanupOnSignal::~CleanupOnSignal() {
  g_depth = depth_;  // scopes end in reverse order: this one and any inside it are over
  if (depth_ == 0)
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &g_previous[i], nullptr);
}

}  // namespace flywheel
