// Counter-based random numbers: every draw is a pure function of
// (seed, purpose, step, index, counter), so results never depend on the mesh, the thread
// count, or the order in which ranks ask. The mixing function is XXH3-64 (xxHash) over the
// 40-byte key, which passes SMHasher; we rely on it only for statistical quality, not secrecy.
#pragma once

#include <cstdint>

namespace flywheel {

// What a stream of random numbers is for; part of the key so streams never collide.
enum class RngPurpose : uint64_t {
  kWeightInit = 1,
  kDataShuffle = 2,
  kTaskGenerate = 3,
  kSampling = 4,
};

struct RngKey {
  uint64_t seed = 0;
  RngPurpose purpose = RngPurpose::kWeightInit;
  uint64_t step = 0;   // optimizer step, epoch, or tensor id: whatever the purpose needs
  uint64_t index = 0;  // global sample / element index
};

uint64_t random_u64(const RngKey& key, uint64_t counter);

// A cursor over one key's stream. Cheap to copy; two copies at the same counter agree.
class CounterRng {
 public:
  explicit CounterRng(const RngKey& key, uint64_t counter = 0) : key_(key), counter_(counter) {}
  uint64_t next_u64() { return random_u64(key_, counter_++); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < n / 2^64).
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next_u64()) * n) >> 64); }
  // Standard normal by Box-Muller (consumes two counters).
  double normal();
  uint64_t counter() const { return counter_; }

 private:
  RngKey key_;
  uint64_t counter_;
};

}  // namespace flywheel
