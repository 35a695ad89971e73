// bfloat16: the "fast" serving dtype, stored in 2 bytes (BFloat16). bf16 is the upper 16 bits of an
// IEEE fp32 (sign, 8 exponent bits, 7 mantissa bits), so widening it to fp32 is an exact shift. Rounding from fp32 is round-to-nearest-even on the 16
// dropped bits; NaN stays NaN (a quiet-NaN bit is forced because truncating a NaN whose payload
// sits only in the low 16 bits would turn it into an infinity); +-Inf stay +-Inf, and finite
// values beyond the bf16 range round to +-Inf as IEEE rounding says.
#pragma once

#include <cstdint>
#include <cstring>

namespace flywheel {

// 2-byte element types: bit patterns, so a Tensor of them has the right element size and dtype.
struct BFloat16 {
  uint16_t bits;
};
struct Float16 {
  uint16_t bits;
};
static_assert(sizeof(BFloat16) == 2 && sizeof(Float16) == 2);

inline uint32_t fp32_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

inline float fp32_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// fp32 -> bf16 bit pattern, round-to-nearest-even. Branch-free apart from the NaN select so the
// conversion loops vectorise: adding 0x7fff plus the lowest kept bit carries into bit 16 exactly
// when the dropped half is > 0x8000, or == 0x8000 with an odd kept part (ties to even).
inline uint16_t bf16_bits_from_fp32(float value) {
  const uint32_t bits = fp32_bits(value);
  const uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  const bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
  return static_cast<uint16_t>(nan ? ((bits >> 16) | 0x0040u) : rounded);
}

inline float fp32_from_bf16_bits(uint16_t bits) { return fp32_from_bits(static_cast<uint32_t>(bits) << 16); }

// The fp32 value a bf16 replica computes with: round_to_bf16(x) == fp32_from_bf16_bits(bf16(x)).
inline float round_to_bf16(float value) { return fp32_from_bf16_bits(bf16_bits_from_fp32(value)); }

// IEEE binary16 bit pattern -> fp32, exactly (every half value is an fp32 value): subnormal halves
// become normal fp32s, +-Inf stay +-Inf, NaN stays NaN with its payload in the top mantissa bits.
inline float fp32_from_f16_bits(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  const uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0x1f) return fp32_from_bits(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0) return fp32_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
  if (mantissa == 0) return fp32_from_bits(sign);
  int shift = 0;  // subnormal: m * 2^-24; normalise the mantissa so its leading 1 is implicit
  while ((mantissa & 0x400u) == 0) {
    mantissa <<= 1;
    ++shift;
  }
  return fp32_from_bits(sign | (static_cast<uint32_t>(113 - shift) << 23) | ((mantissa & 0x3ffu) << 13));
}

inline float to_fp32(BFloat16 value) { return fp32_from_bf16_bits(value.bits); }
inline BFloat16 to_bf16(float value) { return {bf16_bits_from_fp32(value)}; }

inline void bf16_to_fp32(const BFloat16* src, float* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = to_fp32(src[i]);
}
inline void fp32_to_bf16(const float* src, BFloat16* dst, int64_t count) {
  for (int64_t i = 0; i < count; ++i) dst[i] = to_bf16(src[i]);
}

}  // namespace flywheel
