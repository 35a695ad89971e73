#include "core/memory_budget.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace flywheel {
namespace {

std::string g_note;  // what the last check compared (start-up is single-threaded)

// MemAvailable in bytes, or 0 when /proc/meminfo has none (not Linux, or a kernel before 3.14).
double mem_available() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    double kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024.0;
  }
  return 0;
}

}  // namespace

double MemoryNeed::total() const {
  double sum = 0;
  for (const auto& [name, bytes] : parts) sum += bytes;
  return sum;
}

std::string MemoryNeed::describe() const {
  std::string list;
  for (const auto& [name, bytes] : parts)
    if (bytes > 0) list += (list.empty() ? "" : ", ") + name + " " + format_memory(bytes);
  return format_memory(total()) + " (" + list + ")";
}

MachineMemory machine_memory() {
  if (const double available = mem_available(); available > 0) return {available, "MemAvailable in /proc/meminfo"};
  const double pages = static_cast<double>(::sysconf(_SC_PHYS_PAGES));
  const double page_size = static_cast<double>(::sysconf(_SC_PAGESIZE));
  return {pages > 0 && page_size > 0 ? pages * page_size : 0, "physical memory (sysconf)"};
}

void check_memory_fits(const MemoryNeed& need, const MachineMemory& machine, int ranks_on_node,
                       const std::string& advice) {
  const double share = machine.available / std::max(ranks_on_node, 1);
  const std::string machine_text =
      detail::concat(format_memory(machine.available), " available (", machine.source, ")",
                     ranks_on_node > 1 ? detail::concat(" for its ", ranks_on_node, " ranks: ", format_memory(share),
                                                        " each")
                                       : std::string());
  g_note = detail::concat(need.who, " was planned to need ", need.describe(), "; the machine had ", machine_text);
  // Unknown machine memory (0) checks nothing rather than refusing every run.
  FW_INPUT_CHECK(machine.available <= 0 || need.total() <= share, "the model needs ", need.describe(), " on ",
                 need.who, ", the machine has ", machine_text, ": ", advice);
}

std::string out_of_memory_note() {
  return g_note.empty() ? "no memory check ran before it" : g_note;
}

std::string format_memory(double bytes) {
  char text[48];
  if (bytes >= 1024.0 * 1024 * 1024 * 1024 * 1024 * 1024) {  // an EiB and beyond: GiB as a power of ten
    std::snprintf(text, sizeof(text), "%.2g GiB", bytes / (1024.0 * 1024 * 1024));
    return text;
  }
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int unit = 0;
  for (; bytes >= 1024.0 && unit < 5; ++unit) bytes /= 1024.0;
  std::snprintf(text, sizeof(text), unit == 0 ? "%.0f %s" : "%.1f %s", bytes, kUnits[unit]);
  return text;
}

}  // namespace flywheel
