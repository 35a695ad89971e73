// Safetensors files written byte by byte for the reader's tests (test_safetensors*.cpp): the layout
// of the format (8-byte little-endian header length, JSON header, buffer), not our writer.
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace flywheel::testing {

inline std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
  return out;
}

// A file from its header text and buffer bytes, as any writer would lay it out.
inline std::string raw_file(const std::string& header, const std::string& buffer) {
  return le64(header.size()) + header + buffer;
}

inline void put(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace flywheel::testing
