#pragma once
// IEEE half and bfloat16 conversions, bit-exact with the hardware instructions (round to nearest even).
#include <cstdint>
#include <cstring>

namespace ponder {

inline float fp32_from_bits(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t fp32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

// half -> float, exact for every value including subnormals, inf and NaN.
inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  // inf, or NaN made quiet with its payload kept (as vcvtph2ps does).
  if (exp == 0x1f) return fp32_from_bits(sign | 0x7f800000u | (mant ? 0x400000u : 0) | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return fp32_from_bits(sign);
    // subnormal: value = mant * 2^-24
    float f = float(mant) * (1.0f / 16777216.0f);
    return sign ? -f : f;
  }
  return fp32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

// float -> half, round to nearest even (what F16C's vcvtps2ph with rounding mode 0 does).
inline uint16_t fp32_to_fp16(float f) {
  const uint32_t x = fp32_to_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t abs = x & 0x7fffffff;
  if (abs == 0x7f800000u) return uint16_t(sign | 0x7c00);                           // inf
  if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00 | ((abs >> 13) & 0x3ff));   // quiet NaN, top payload bits kept
  if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to >= 65520: overflow to inf
  if (abs < 0x38800000u) {                                  // below the smallest normal half 2^-14
    if (abs < 0x33000000u) return uint16_t(sign);          // below half the smallest subnormal
    const uint32_t e = abs >> 23;
    const uint32_t m = (abs & 0x7fffff) | 0x800000;
    const uint32_t total = 126 - e;  // value = m * 2^(e-150); in units of 2^-24 that is m >> (126 - e)
    uint32_t q = m >> total;
    const uint32_t rem = m & ((1u << total) - 1);
    const uint32_t halfway = 1u << (total - 1);
    if (rem > halfway || (rem == halfway && (q & 1))) q++;
    return uint16_t(sign | q);
  }
  uint32_t r = abs - 0x38000000u;  // rebias exponent 127 -> 15
  const uint32_t rem = r & 0x1fff;
  uint32_t h = r >> 13;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return uint16_t(sign | h);
}

inline float bf16_to_fp32(uint16_t h) { return fp32_from_bits(uint32_t(h) << 16); }

// float -> bfloat16, round to nearest even; NaN stays NaN (as ggml's GGML_FP32_TO_BF16). Same bits as
// AVX512_BF16's vcvtneps2bf16 except for float subnormals, which that instruction flushes to zero.
inline uint16_t fp32_to_bf16(float f) {
  uint32_t u = fp32_to_bits(f);
  if ((u & 0x7fffffff) > 0x7f800000u) return uint16_t((u >> 16) | 64);
  return uint16_t((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

}  // namespace ponder
