#include "byte_size.h"

#include <cmath>
#include <cstddef>

namespace flywheel::ckpt_tool {
namespace {

struct Unit {
  const char* name;
  double bytes;
};

// Longest names first, so "GiB" is not read as "B" after "Gi".
constexpr Unit kUnits[] = {{"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
                           {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},           {"TB", 1e12},
                           {"B", 1.0}};

bool ends_with(const std::string& text, const std::string& tail) {
  return text.size() >= tail.size() && text.compare(text.size() - tail.size(), tail.size(), tail) == 0;
}

// "12" or "1.5": digits with at most one '.', which has a digit on each side.
bool is_decimal(const std::string& number) {
  const size_t dot = number.find('.');
  if (number.empty() || number.find_first_not_of("0123456789.") != std::string::npos) return false;
  if (dot == std::string::npos) return true;
  return dot > 0 && dot + 1 < number.size() && number.find('.', dot + 1) == std::string::npos;
}

}  // namespace

std::optional<uint64_t> parse_byte_size(const std::string& text) {
  std::string number = text;
  double scale = 1.0;
  for (const Unit& unit : kUnits) {
    if (!ends_with(text, unit.name)) continue;
    number = text.substr(0, text.size() - std::string(unit.name).size());
    scale = unit.bytes;
    break;
  }
  if (!is_decimal(number) || number.size() > 20) return std::nullopt;
  // Plain bytes stay exact; a unit's fraction goes through double (53 bits: exact to well past 1 PB).
  if (scale == 1.0 && number.find('.') != std::string::npos) return std::nullopt;  // "1.5" bytes
  const double bytes = std::floor(std::stod(number) * scale);
  if (!(bytes >= 1.0) || bytes >= 18446744073709551616.0) return std::nullopt;
  if (scale == 1.0) {
    if (number.size() > 19 && number > "18446744073709551615") return std::nullopt;
    return std::stoull(number);
  }
  return static_cast<uint64_t>(bytes);
}

}  // namespace flywheel::ckpt_tool
