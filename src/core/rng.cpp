#include "core/rng.h"

#include <xxhash.h>

#include <cmath>
#include <numbers>

namespace flywheel {

uint64_t random_u64(const RngKey& key, uint64_t counter) {
  const uint64_t words[4] = {static_cast<uint64_t>(key.purpose), key.step, key.index, counter};
  return XXH3_64bits_withSeed(words, sizeof(words), key.seed);
}

double CounterRng::normal() {
  // u1 in (0, 1] so log(u1) is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace flywheel
