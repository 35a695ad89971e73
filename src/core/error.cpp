#include "core/error.h"

#include <cstring>

namespace flywheel::detail {
namespace {
// Only the path below src/, so messages stay short and stable across build trees.
const char* short_path(const char* file) {
  const char* below_src = std::strstr(file, "src/");
  return below_src ? below_src : file;
}
}  // namespace

[[noreturn]] void throw_error(const char* file, int line, const std::string& message) {
  throw Error(concat(short_path(file), ":", line, ": ", message));
}

[[noreturn]] void throw_input_error(const char* file, int line, const std::string& message) {
  throw InputError(message, concat(short_path(file), ":", line));
}

}  // namespace flywheel::detail
