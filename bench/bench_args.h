// Shared by the benchmarks' mains: their command lines are launch/command_line.h's (declared options,
// --help, --section.key=value shape overrides); this turns what a benchmark throws into a message and
// an exit code: 2 for a usage error (with a pointer to --help), 1 for any other error.
#pragma once

#include <cstdint>
#include <cstdio>
#include <exception>
#include <sstream>
#include <string>
#include <vector>

#include "launch/command_line.h"

namespace flywheel::bench {

// "1,8,32" -> {1, 8, 32}: a benchmark's list option (batch sizes, stream counts).
inline std::vector<int64_t> parse_int_list(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

template <typename Body>
int guarded_main(const char* name, Body body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: usage error: %s (see `%s --help`)\n", name, e.what(), name);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", name, e.what());
    return 1;
  }
}

}  // namespace flywheel::bench
