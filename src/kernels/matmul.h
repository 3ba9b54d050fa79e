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
  Q4x8,  // Q4_0 or IQ4_NL repacked for the SIMD kernels: groups of 8 rows, block by block (BlockQ4x8)
  Q4Kx8,  // Q4_K repacked for the SIMD kernels: groups of 8 rows, super-block by super-block (BlockQ4Kx8)
  Q5x8,   // Q5_0 repacked for the SIMD kernels: groups of 8 rows, block by block (BlockQ5x8)
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

// Block b of 8 consecutive rows of a Q5_0 matrix: qs as in BlockQ4x8 (the low 4 bits of every
// weight), qh[c] the fifth bits of weights 4c..4c+3 of the 8 rows (bit 4r + i: weight 4c + i of
// row r), so that they mask one 32-byte chunk; d the rows' fp16 scales. Same bytes as 8 Q5_0 blocks.
struct BlockQ5x8 {
  uint16_t d[8];
  uint32_t qh[8];
  uint8_t qs[4][8][4];
};
static_assert(sizeof(BlockQ5x8) == 176);

// Super-block b of 8 consecutive rows of a Q4_K matrix (same bytes as 8 BlockQ4_K):
//   qs[p][j][r][i] is byte 32p + 4j + i of row r's qs: low nibble weight 64p + 4j + i (sub-block
//     2p), high nibble weight 64p + 32 + 4j + i (sub-block 2p + 1); so one 32-byte load gives
//     4 weights of sub-blocks 2p and 2p + 1 of all 8 rows.
//   scales: the 6-bit scales sc[8s + r] (sub-block s, row r) in bytes 0..47 and mins
//     mn[16p + 2r + h] (sub-block 2p + h, row r) in bytes 48..95, each 64-entry array v packed as
//     32 bytes of low nibbles (byte i: v[i] & 15 | (v[i + 32] & 15) << 4) then 16 bytes of top
//     bits (byte j, bits 2q..2q+1: v[j + 16q] >> 4).
struct BlockQ4Kx8 {
  uint16_t d[8], dmin[8];
  uint8_t scales[96];
  uint8_t qs[4][8][8][4];
};
static_assert(sizeof(BlockQ4Kx8) == 8 * 144);

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
// Repacks a Q4_0 or IQ4_NL matrix (Rows layout, N a multiple of 8; the two have the same block
// bytes) into Q4x8, for a view {Q4_0 or IQ4_NL, bytes, N, K, Q4x8, Interleaved8}.
std::vector<uint8_t> repack_q4x8(const WeightView& w);
// Repacks a Q4_K matrix (Rows layout, N a multiple of 8) into Q4Kx8, for a view {Q4_K, bytes, N,
// K, Q4Kx8, Interleaved8}.
std::vector<uint8_t> repack_q4kx8(const WeightView& w);
// Repacks a Q5_0 matrix (Rows layout, N a multiple of 8) into Q5x8.
std::vector<uint8_t> repack_q5x8(const WeightView& w);
// Repacks a matrix in GGUF rows into the layout its SIMD kernels read, if there is one (Q8_0 ->
// Q8x8; Q5_0 with a multiple of 8 rows -> Q5x8; Interleaved8 Q4_0, IQ4_NL -> Q4x8, Q4_K -> Q4Kx8): w then
// points into the returned bytes, which must outlive it. Other matrices are left as they are (the
// returned vector is empty).
std::vector<uint8_t> repack_for_kernels(WeightView& w);

// Converts K floats to a weight type's storage format (F16/BF16 rounding, Q8_0 quantization).
void convert_row(uint8_t* out, const float* x, int64_t K, GgmlType type);

// The SIMD kernels matmul can take, best last: none, AVX2 (with FMA and F16C), AVX-512 VNNI
// (with BW and VL). Every level gives the same bits.
enum class SimdLevel { Portable, Avx2, Avx512Vnni };
// The best level this build has and this CPU runs (CPUID, checked once).
SimdLevel simd_level();
// "portable", "avx2" or "avx512-vnni".
const char* simd_level_name(SimdLevel level);

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
// The same bytes, quantized with the kernels of a level at most simd_level().
void pack_activations_at(PackedActivations& out, const float* x, int64_t T, int64_t K, GgmlType weight_type,
                         std::span<const int32_t> chunks, SimdLevel level);

// y[t * ldy + n] = dot(x[t], W[n]) for t < T, n < N. Multi-threaded over n (OpenMP).
void matmul(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w);
// The same arithmetic with the kernels of a level at most simd_level() (the tests hold every
// level to the portable one, bitwise).
void matmul_at(float* y, int64_t ldy, const PackedActivations& x, const WeightView& w, SimdLevel level);
// The kernel path matmul takes for this matrix on this build and CPU: simd_level_name of the
// level whose tile runs, "portable" where there is no tile for the matrix.
const char* matmul_kernel_path(const WeightView& w);

// Row r of W as floats (exact dequantization: Q8_0 gives d * q), either layout. out: (K)
void dequantize_row(float* out, const WeightView& w, int64_t r);

}  // namespace ponder
