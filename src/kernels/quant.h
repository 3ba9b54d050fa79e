#pragma once
// The quantized weight types as rows of one table (DESIGN.md): per type, its activation partner
// (the activations of a matrix product are quantized once to this type), the dequantization of a
// row, and the dot product of a weight row with a partner row in llama.cpp's arithmetic, so that
// ponder computes the numbers llama.cpp computes:
//   * dot: the order of llama.cpp's one-row dot product on AVX2/AVX-512 (ggml_vec_dot_<type>_<partner>,
//     whose 8-lane float accumulators its batch kernels share for these types);
//   * dot_x8 / dot_x8_gemm / dot_x8_panel: for the types llama.cpp handles 8 rows at a time on x86
//     when a matrix has a multiple of 8 rows (repacked Q4_0, IQ4_NL, Q4_K, Q2_K; the IQ panel
//     kernels for IQ4_XS), the orders of those kernels (exact integer sums per block or sub-block
//     group, one float multiply-add each). Which one a token gets depends on the chunk it came in
//     (RowShape below), as in llama.cpp, where a prompt of n tokens runs its first n - n % 4
//     through the 4-token gemm and the rest through the gemv.
// Adding a type is adding a row and its functions; nothing in model/ or decode/ changes.
#include <cstdint>

#include "core/ggml_type.h"
#include "kernels/quant_blocks.h"

namespace ponder {

// One row of the table. Rows are K weights (K a multiple of the type's block size); partner
// rows are K activations in the partner's activation format (see quantize_activation_row).
using QuantDot = float (*)(const uint8_t* w_row, const uint8_t* x_row, int64_t K);
struct QuantType {
  GgmlType type;
  GgmlType partner;  // Q8_0, Q8_1 or Q8_K
  void (*dequantize)(float* out, const uint8_t* row, int64_t K);
  QuantDot dot;  // llama.cpp's one-row order
  // For matrices with a multiple of 8 rows (DotOrder::Interleaved8), the orders of llama.cpp's
  // x86 kernels for them; nullptr where it has none (the one-row order then):
  QuantDot dot_x8;        // repacked gemv: a token alone, and the last n % 4 tokens of a chunk of n
  QuantDot dot_x8_gemm;   // repacked gemm: the first n - n % 4 tokens of a chunk (nullptr: as dot_x8)
  QuantDot dot_x8_panel;  // IQ panel kernels: every token of a chunk of 8 or more
};

// Where an activation row sits in the chunk of tokens one sequence feeds to one forward (the
// batch llama.cpp would see), as flags: llama.cpp's order for a token depends on it (above).
// A path's own chunk decides, never the other rows of a ponder batch: batch invariance holds.
enum RowShape : uint8_t {
  kRowAlone = 0,
  kRowInGroupOf4 = 1,  // among the first n - n % 4 tokens of its chunk of n
  kRowInChunkOf8 = 2,  // its chunk has 8 or more tokens
};
// The shape flags of token i of a chunk of n tokens.
inline uint8_t row_shape(int64_t i, int64_t n) {
  return uint8_t((i < n - n % 4 ? kRowInGroupOf4 : 0) | (n >= 8 ? kRowInChunkOf8 : 0));
}

// The dot product a row of this shape uses: one-row order, or for interleaved8 matrices the
// repacked kernels' orders.
inline QuantDot pick_dot(const QuantType& q, bool interleaved8, uint8_t shape) {
  if (interleaved8) {
    if (q.dot_x8_panel && (shape & kRowInChunkOf8)) return q.dot_x8_panel;
    if (q.dot_x8_gemm && (shape & kRowInGroupOf4)) return q.dot_x8_gemm;
    if (q.dot_x8) return q.dot_x8;
  }
  return q.dot;
}
// True when llama.cpp has 8-row kernels for this type (matrices whose rows are a multiple of 8).
inline bool has_x8_order(const QuantType& q) { return q.dot_x8 || q.dot_x8_panel; }

// The row of a type, or nullptr for F32, F16, BF16 and the activation-only types.
const QuantType* quant_type(GgmlType type);

// The first block of n_blocks consecutive blocks of a quantized type whose fp16 scale (d, or the
// min scale dmin/m) is infinite or NaN, or -1 when every one is finite. Multi-threaded.
int64_t first_nonfinite_scale(GgmlType type, const uint8_t* data, int64_t n_blocks);

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
