#include "core/fault_injection.h"

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace flywheel {
namespace {

constexpr const char* kVariable = "FLYWHEEL_FAULT_INJECT";

int64_t parse_number(std::string_view key, std::string_view text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  FW_CHECK(!text.empty() && ec == std::errc() && ptr == end && value >= 0, kVariable, ": ", key, "='", text,
           "' is not a non-negative integer");
  return value;
}

}  // namespace

std::optional<FaultSpec> parse_fault_spec(std::string_view text) {
  if (text.empty()) return std::nullopt;
  FaultSpec spec;
  bool have_rank = false, have_step = false;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    const std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    const size_t eq = item.find('=');
    FW_CHECK(eq != std::string_view::npos, kVariable, ": '", item, "' is not key=value (rank=R,step=S[,mode=throw|kill])");
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "rank") {
      spec.rank = static_cast<int>(parse_number(key, value));
      have_rank = true;
    } else if (key == "step") {
      spec.step = parse_number(key, value);
      have_step = true;
    } else if (key == "mode") {
      FW_CHECK(value == "throw" || value == "kill", kVariable, ": mode='", value, "'; allowed: throw, kill");
      spec.mode = value == "kill" ? FaultSpec::Mode::kKill : FaultSpec::Mode::kThrow;
    } else {
      FW_THROW(kVariable, ": unknown key '", key, "'; keys: rank, step, mode");
    }
  }
  FW_CHECK(have_rank && have_step, kVariable, " needs both rank= and step= (e.g. rank=2,step=3)");
  return spec;
}

void maybe_inject_fault(int rank, int64_t step) {
  // Read once: the variable cannot change under us, and the step loop should not pay for getenv.
  static const std::optional<FaultSpec> spec = [] {
    const char* text = std::getenv(kVariable);
    return parse_fault_spec(text != nullptr ? text : "");
  }();
  if (!spec || spec->rank != rank || spec->step != step) return;
  if (spec->mode == FaultSpec::Mode::kKill) std::raise(SIGKILL);
  // Thrown with FW_THROW like any library error, so the message carries file:line as the real ones do.
  FW_THROW("injected fault on rank ", rank, " at step ", step);
}

}  // namespace flywheel
