#pragma once
// y = x W^T for the weight types ponder reads (F32, F16, BF16, Q8_0), with llama.cpp's numerics:
// the activations are first converted to the weight's "dot type" (F16 and BF16 round them,
// Q8_0 quantizes them to int8 blocks), then each output is one dot product in the order of
// llama.cpp's one-row dot products on AVX-512 (ggml_vec_dot_*):
//   F32/F16/BF16: the first K - K % 64 inputs in 64 float lanes (input k in lane k % 64, fma),
//     the lanes reduced as reduce_lanes64 (kernels/dot.h) does, then the last K % 64 inputs one by
//     one (fma in float; for F16, as llama.cpp does, products added in double).
//   Q8_0: per 32-input block, 8 exact integer lane sums (lane j: inputs 4j..4j+3), each added as
//     acc[j] = fma(dw * dx, float(sum_j), acc[j]) block after block; then the 8 lanes by
//     ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
// llama.cpp computes Q8_0 products this way for any batch size; quantized activations make that
// order matter: a last-bit difference upstream can flip the rounding of one activation quant and
// move the logits by ~0.1 on a random-weight model.
//
// Batch invariance: every output element y[t][n] is reduced in this one fixed order, whatever the
// number of rows T in the batch, the tile it lands in and the thread count. Threads split output
// columns (weight rows), never a reduction. The portable path does the same arithmetic lane by
// lane, so SIMD and portable results are bitwise equal.
#include <cstdint>
#include <span>
#include <vector>

#include "core/ggml_type.h"
#include "kernels/quant.h"

namespace ponder {

// How a weight matrix's bytes are laid out.
enum class WeightLayout : uint8_t {
  Rows,  // as stored in GGUF: N rows of K inputs, each row ggml_row_size(type, K) bytes
  Q8x8,  // Q8_0 repacked for the SIMD kernels: groups of 8 rows, block by block (BlockQ8x8)
  Q4x8,  // Q4_0 repacked for the SIMD kernels: groups of 8 rows, block by block (BlockQ4x8)
};

// Block b of 8 consecutive rows of a Q8_0 matrix, interleaved so that one 32-byte load holds
// 4 quants of each of the 8 rows: qs[c][r][i] is quant 4c+i of row r. The quants are stored
// offset by +128 (unsigned bytes, the form vpdpbusd multiplies); d are the rows' fp16 scales.
struct BlockQ8x8 {
  uint16_t d[8];
  uint8_t qs[8][8][4];
};
static_assert(sizeof(BlockQ8x8) == 272);

// Which of llama.cpp's summation orders a quantized matrix follows (kernels/quant.h): its
// one-row dot product, or for the types it repacks 8 rows at a time on x86 (Q4_0, IQ4_NL, Q4_K,
// Q2_K with a multiple of 8 rows) the order of those kernels. Chosen once at load, as llama.cpp
// chooses, so a row's result never depends on the batch.
enum class DotOrder : uint8_t { Row, Interleaved8 };

// Block b of 8 consecutive rows of a Q4_0 matrix: qs[c][r][i] is byte 4c+i of row r's block,
// whose low nibble is weight 4c+i and high nibble weight 16+4c+i (so one 32-byte load gives the
// weights 4c..4c+3 and 16+4c..16+4c+3 of all 8 rows); d are the rows' fp16 scales. Same bytes
// as 8 Q4_0 blocks.
struct BlockQ4x8 {
  uint16_t d[8];
  uint8_t qs[4][8][4];
};
static_assert(sizeof(BlockQ4x8) == 144);

// A weight matrix W (N, K): N rows (outputs) of K inputs (ne[0] = K, ne[1] = N).
struct WeightView {
  GgmlType type = GgmlType::F32;
  const uint8_t* data = nullptr;
  int64_t n_rows = 0;  // N (outputs)
  int64_t n_cols = 0;  // K (inputs)
  WeightLayout layout = WeightLayout::Rows;
  DotOrder order = DotOrder::Row;
  int64_t row_bytes() const { return ggml_row_size(type, n_cols); }
  const uint8_t* row(int64_t r) const { return data + r * row_bytes(); }  // Rows layout only
};

// Repacks a Q8_0 matrix (Rows layout) into Q8x8; the last group is padded with zero rows.
// The returned bytes back a view {Q8_0, bytes, N, K, Q8x8}.
std::vector<uint8_t> repack_q8x8(const WeightView& w);
// Repacks a Q4_0 matrix (Rows layout, N a multiple of 8) into Q4x8, for a view {Q4_0, bytes, N,
// K, Q4x8, Interleaved8}.
std::vector<uint8_t> repack_q4x8(const WeightView& w);

// Converts K floats to a weight type's storage format (F16/BF16 rounding, Q8_0 quantization).
void convert_row(uint8_t* out, const float* x, int64_t K, GgmlType type);

// Activations x (T, K) converted to the dot type of a weight type (F32: as is; F16/BF16:
// rounded; quantized types: their partner's format, kernels/quant.h).
struct PackedActivations {
  GgmlType type = GgmlType::F32;  // the weight type they were packed for
  int64_t n_cols = 0;             // K
  int64_t n_rows = 0;             // T
  int64_t row_bytes = 0;
  std::vector<uint8_t> data;      // (T, row_bytes); grows, never shrinks
  std::vector<uint8_t> shapes;    // (T) RowShape flags (kernels/quant.h)
  const uint8_t* row(int64_t t) const { return data.data() + t * row_bytes; }
};

// x: (T, K) floats, row stride K. chunks: the token counts of the sequences' chunks the rows
// come from, in order, summing to T (their RowShape; empty: every row alone, as a decode step).
void pack_activations(PackedActivations& out, const float* x, int64_t T, int64_t K, GgmlType weight_type,
                      std::span<const int32_t> chunks = {});

// y[t * ldy + n] = dot(x[t], W[n]) for t < T, n < N. Multi-threaded over n (OpenMP).
void matmul(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w);
// The same arithmetic without SIMD (the reference the tests hold the SIMD path to, bitwise).
void matmul_portable(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w);
// True when matmul uses the SIMD path on this build.
bool matmul_has_simd();

// Row r of W as floats (exact dequantization: Q8_0 gives d * q), either layout. out: (K)
void dequantize_row(float* out, const WeightView& w, int64_t r);

}  // namespace ponder
