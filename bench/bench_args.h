// Shared by the benchmarks' command lines: everything cxxopts did not recognise must be a shape
// override of the form --section.key=value (passed on to load_shape).
#pragma once

#include <string>
#include <vector>

#include <cxxopts.hpp>

#include "core/error.h"

namespace flywheel::bench {

inline std::vector<std::string> shape_overrides(const cxxopts::ParseResult& args) {
  std::vector<std::string> overrides;
  for (const std::string& u : args.unmatched()) {
    FW_CHECK(u.rfind("--", 0) == 0 && u.find('.') != std::string::npos && u.find('=') != std::string::npos,
             "unknown argument '", u, "' (see --help; shape overrides look like --model.n_layers=2)");
    overrides.push_back(u);
  }
  return overrides;
}

}  // namespace flywheel::bench
