#pragma once
// The quantized weight types as rows of one table (DESIGN.md): per type, its activation partner
// (the activations of a matrix product are quantized once to this type), the dequantization of a
// row, and the dot product of a weight row with a partner row in llama.cpp's arithmetic, so that
// ponder computes the numbers llama.cpp computes:
//   * dot: the order of llama.cpp's one-row dot product on AVX2/AVX-512 (ggml_vec_dot_<type>_<partner>,
//     whose 8-lane float accumulators its batch kernels share for these types);
//   * dot_x8: for the types llama.cpp repacks 8 rows at a time on x86 when a matrix has a multiple
//     of 8 rows (Q4_0, IQ4_NL, Q4_K, Q2_K), the order of those repacked kernels (an exact integer
//     sum per block and row, one float multiply-add per block); nullptr for the others.
// Adding a type is adding a row and its functions; nothing in model/ or decode/ changes.
#include <cstdint>

#include "core/ggml_type.h"
#include "kernels/quant_blocks.h"

namespace ponder {

// One row of the table. Rows are K weights (K a multiple of the type's block size); partner
// rows are K activations in the partner's activation format (see quantize_activation_row).
struct QuantType {
  GgmlType type;
  GgmlType partner;  // Q8_0, Q8_1 or Q8_K
  void (*dequantize)(float* out, const uint8_t* row, int64_t K);
  float (*dot)(const uint8_t* w_row, const uint8_t* x_row, int64_t K);
  float (*dot_x8)(const uint8_t* w_row, const uint8_t* x_row, int64_t K);
};

// The row of a type, or nullptr for F32, F16, BF16 and the activation-only types.
const QuantType* quant_type(GgmlType type);

// Activation formats, one per partner type (what pack_activations writes for a matrix product):
//   Q8_0 -> ActBlockQ8, Q8_1 -> ActBlockQ8_1, Q8_K -> BlockQ8_K (llama.cpp's layout).

// llama.cpp's Q8_0 block (int8 quants, fp16-rounded scale) plus corr[j] = -128 * (sum of quants
// 4j..4j+3), the correction for the +128 weight offset of the Q8x8 layout in lane j.
struct ActBlockQ8 {
  int8_t qs[kQ8Block];
  int32_t corr[8];
  float d;      // the fp16 scale, as float
  int32_t sum;  // sum of the quants (the correction of offset-8 weights: -8 * sum)
};
static_assert(sizeof(ActBlockQ8) == 72);

struct ActBlockQ8_1 {
  int8_t qs[kQK];
  float d;  // the fp16-rounded scale, as float
  float s;  // fp16(d * sum(qs)), as float
};
static_assert(sizeof(ActBlockQ8_1) == 40);

// Q8_0 quantization of one row of K floats (K a multiple of 32), as llama.cpp's x86 path does it:
// d = max|x| / 127 rounded to fp16, q = round-half-even(x * 127 / max|x|).
void quantize_row_q8_0(BlockQ8_0* out, const float* x, int64_t K);

// Bytes of K activations in a partner type's format.
int64_t activation_row_bytes(GgmlType partner, int64_t K);
// x (K floats) -> out in the partner's format, with llama.cpp's rounding (quantize_row_q8_0,
// quantize_row_q8_1, quantize_row_q8_K).
void quantize_activation_row(uint8_t* out, const float* x, int64_t K, GgmlType partner);

}  // namespace ponder
