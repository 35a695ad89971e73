#include "rl/publish_fault.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace flywheel {

void maybe_corrupt_published(const PublishInfo& info) {
  const char* spec = std::getenv("FLYWHEEL_CORRUPT_PUBLISH");
  if (spec == nullptr || *spec == '\0') return;
  if (std::string(spec) == "delta") {
    if (info.full) return;
  } else {
    char* end = nullptr;
    const long long step = std::strtoll(spec, &end, 10);
    FW_CHECK(end != spec && *end == '\0' && step >= 0, "FLYWHEEL_CORRUPT_PUBLISH = '", spec,
             "': must be a step number (a non-negative integer) or delta (every delta)");
    if (step != info.step) return;
  }
  flip_byte_near_end(info.path);
  log_warn("FLYWHEEL_CORRUPT_PUBLISH: flipped a byte of ", info.path, " (test hook)");
}

void flip_byte_near_end(const std::string& path) {
  // A byte near the end lies in the compressed payload (or the trailing checksum): either way the
  // file's own checksum no longer matches.
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  FW_CHECK(file, "cannot open ", path, " to corrupt it (test hook)");
  file.seekg(-16, std::ios::end);
  char byte = 0;
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x5a);
  file.seekp(-16, std::ios::end);
  file.write(&byte, 1);
  FW_CHECK(file, "could not rewrite a byte of ", path, " (test hook)");
}

}  // namespace flywheel
