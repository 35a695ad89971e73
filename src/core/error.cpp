#include "core/error.h"

#include <cstring>

namespace flywheel::detail {

[[noreturn]] void throw_error(const char* file, int line, const std::string& message) {
  // Keep only the path below src/ so messages stay short and stable across build trees.
  const char* short_file = std::strstr(file, "src/");
  throw Error(concat(short_file ? short_file : file, ":", line, ": ", message));
}

}  // namespace flywheel::detail
