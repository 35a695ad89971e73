// What a rank needs in host memory against what the machine has: checked before a run allocates its
// model (`flywheel train`, `flywheel run`), so a model too large for the machine is refused with
// the figures instead of ending in a bare std::bad_alloc, and recalled if an allocation fails anyway.
//
// Sizes are doubles: a model too large to count in int64 (model.d_model = 4000000000) must still
// compare as too large. The machine's memory is MemAvailable of /proc/meminfo (what can be allocated
// without swapping), else the physical pages (sysconf); ranks on one node share it evenly. cgroup
// limits are not read.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace flywheel {

struct MemoryNeed {
  std::string who;                                    // "trainer rank 0", "replica 1"
  std::vector<std::pair<std::string, double>> parts;  // ("weights", bytes), ...
  double total() const;
  std::string describe() const;  // "13.0 MiB (weights 3.3 MiB, grads 3.3 MiB, ...)"
};

struct MachineMemory {
  double available = 0;  // bytes
  std::string source;    // "MemAvailable in /proc/meminfo" | "physical memory (sysconf)"
};

MachineMemory machine_memory();

// Throws InputError when `need` exceeds the machine's available memory divided among
// `ranks_on_node` ranks: "trainer rank 0 needs 1.8 TiB (weights ...), the machine has 22.1 GiB
// available (MemAvailable in /proc/meminfo) for 1 rank: <advice>". Either way remembers the figures
// for out_of_memory_note().
void check_memory_fits(const MemoryNeed& need, const MachineMemory& machine, int ranks_on_node,
                       const std::string& advice);

// What the last check_memory_fits() compared ("the plan for trainer rank 0: 13.0 MiB (...), of 22.1 GiB
// available"), or that no check ran: for the message of a std::bad_alloc that happens anyway.
std::string out_of_memory_note();

// "812 B", "13.0 MiB", "1.8 TiB", "2.8e+12 GiB".
std::string format_memory(double bytes);

}  // namespace flywheel
