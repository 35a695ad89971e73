#include "core/fault_point.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace flywheel {
namespace {
struct Spec {
  std::string name;
  int rank = -1;
  int64_t step = -1;
  int signal = SIGKILL;
};

Spec read_spec() {
  Spec spec;
  const char* text = std::getenv("FLYWHEEL_FAULT_POINT");
  if (!text || !*text) return spec;
  const std::string s = text;
  const size_t a = s.find(':'), b = s.find(':', a == std::string::npos ? a : a + 1);
  if (a == std::string::npos || b == std::string::npos) {
    std::fprintf(stderr, "FLYWHEEL_FAULT_POINT='%s' is not NAME:RANK:STEP; ignored\n", text);
    return spec;
  }
  spec.name = s.substr(0, a);
  spec.rank = std::atoi(s.substr(a + 1, b - a - 1).c_str());
  spec.step = std::atoll(s.substr(b + 1).c_str());
  if (s.find(":USR1", b) != std::string::npos) spec.signal = SIGUSR1;
  return spec;
}
}  // namespace

void fault_point(const char* name, int rank, int64_t step) {
  static const Spec spec = read_spec();
  if (spec.rank == rank && spec.step == step && spec.name == name) {
    std::fprintf(stderr, "fault point %s: %s to rank %d at step %lld\n", name,
                 spec.signal == SIGKILL ? "SIGKILL" : "SIGUSR1", rank, static_cast<long long>(step));
    std::fflush(stderr);
    std::raise(spec.signal);
  }
}

}  // namespace flywheel
