#pragma once
// The block layouts of llama.cpp's quantized types (ggml-common.h), as plain structs. A row of K
// weights is K / block consecutive blocks. Scales are fp16 (uint16_t here) unless noted.
#include <cstdint>

#include "core/ggml_type.h"

namespace ponder {

constexpr int kQK = 32;    // legacy block: 32 weights
constexpr int kQK_K = 256;  // k-quant super-block: 256 weights

// Q4_0: w = d * (q - 8), q a nibble; qs[j] holds weight j (low nibble) and j + 16 (high nibble).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// Q4_1: w = d * q + m.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK / 2];
};
// Q5_0: w = d * (q - 16), q = nibble | (bit j of qh) << 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// Q5_1: w = d * q + m, q 5 bits as in Q5_0.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
// Q8_1 (activations): q = round(x / d); s = d * sum(q) (fp16).
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[kQK];
};
// IQ4_NL: w = d * kvalues_iq4nl[q], q a nibble (layout of Q4_0).
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
// Q2_K: 16 sub-blocks of 16; scales[j] = scale (low nibble) | min (high nibble);
// w = d * scale * q - dmin * min, q 2 bits.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d, dmin;
};
// Q3_K: 16 sub-blocks of 16 with 6-bit signed scales (packed in 12 bytes, offset 32);
// w = d * (scale - 32) * (q - 4 * !hbit), q the 2 low bits, hmask the high bit.
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
// Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes;
// w = d * scale * q - dmin * min, q a nibble.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQK_K / 2];
};
// Q5_K: Q4_K with a fifth bit per weight in qh.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// Q6_K: 16 sub-blocks of 16 with int8 scales; w = d * scale * (q - 32), q = 4 low bits (ql) |
// 2 high bits (qh).
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
// Q8_K (activations): float d, q = round(x / d) with d = max / -127 of the signed largest value;
// bsums: the sums of each 16 quants.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
// IQ4_XS: 8 sub-blocks of 32 with 6-bit scales (4 low bits in scales_l, 2 high in scales_h),
// w = d * (scale - 32) * kvalues_iq4nl[q].
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_1) == 36 && sizeof(BlockIQ4_NL) == 18);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_XS) == 136);

// The non-linear 4-bit values of IQ4_NL and IQ4_XS.
inline constexpr int8_t kValuesIQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

}  // namespace ponder
