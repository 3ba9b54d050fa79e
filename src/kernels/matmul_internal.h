#pragma once
// Shared by the matmul driver (matmul.cpp), the x86 SIMD tiles (matmul_x86.cpp for the float
// types and Q8_0/Q4_0, quant_x86_k.cpp for Q4_K..Q6_K, quant_x86_klow.cpp for Q2_K, Q3_K and
// IQ4_XS, quant_x86_legacy.cpp for the other legacy quants) and the SIMD activation quantizers
// (quant_x86_act.cpp). Each of those files
// compiles its SIMD code once per instruction set (kernels/simd_x86.h).
#include <cstdint>
#include <cstdlib>

#include "kernels/matmul.h"

#include "kernels/simd_x86.h"

namespace ponder::matmul_detail {

constexpr int kLanes = 8;        // a Q8_0 block's 8 integer lane sums (4 inputs each)
constexpr int kTileRows = 4;     // weight rows per tile (F32, F16, BF16, quantized Rows layout)
constexpr int kQ8GroupRows = 8;  // weight rows per tile for Q8x8 (one group)
constexpr int kTileToks = 4;     // activation rows per tile (F32, F16, BF16, quantized Rows layout)
constexpr int kQ8TileToks = 4;   // activation rows per tile for Q8x8 (8 chunk accumulators per row)
constexpr int kQ4TileToks = 4;   // activation rows per tile for Q4x8 (one accumulator per row)
constexpr int kKTileToks = 8;    // activation rows per tile for Q4Kx8 and the k-quant Rows tiles (all Q8_K partners)
constexpr int kPanelTileToks = 16;  // activation rows per tile for Q5x8 (weights unpacked once per tile)

// Computes y[(t+i)*ldy + n+r] for r < nr, i < nt.
using TileFn = void (*)(float* y, int64_t ldy, const WeightView& w, int64_t n, int nr, const PackedActivations& x,
                        int64_t t, int nt);

// Weight rows a tile covers for this view; threads split the rows in multiples of it.
inline int tile_rows(const WeightView& w) {
  switch (w.layout) {
    case WeightLayout::Rows: return kTileRows;
    case WeightLayout::Q4Kx8: return 2 * kQ8GroupRows;  // two groups: the AVX-512 tile takes 16 rows at once
    default: return kQ8GroupRows;
  }
}
inline int tile_toks(const WeightView& w) {
  switch (w.layout) {
    case WeightLayout::Q8x8: return kQ8TileToks;
    case WeightLayout::Q4x8: return kQ4TileToks;
    case WeightLayout::Q4Kx8: return kKTileToks;
    case WeightLayout::Q5x8: return kPanelTileToks;
    default: {
      const GgmlType t = w.type;
      const bool k_quant = t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
                           t == GgmlType::Q6_K || t == GgmlType::IQ4_XS;
      return k_quant ? kKTileToks : kTileToks;
    }
  }
}

// The SIMD tile of a level (at most simd_level()) for a matrix (its type, layout and order) and nt
// tokens, or nullptr when there is none (the portable path runs instead). Quantized tiles take
// exactly nt tokens.
TileFn simd_tile(const WeightView& w, int nt, SimdLevel level);
// The per-group parts of simd_tile (nullptr where the group has no tile for the view).
TileFn simd_tile_k(const WeightView& w, int nt, SimdLevel level);       // quant_x86_k.cpp
TileFn simd_tile_klow(const WeightView& w, int nt, SimdLevel level);    // quant_x86_klow.cpp
TileFn simd_tile_legacy(const WeightView& w, int nt, SimdLevel level);  // quant_x86_legacy.cpp

// quantize_activation_row (kernels/quant.h) with SIMD at a level, bitwise equal to it; false
// when there is no SIMD quantizer for the partner type (the caller then runs the portable one).
bool simd_quantize_activation_row(uint8_t* out, const float* x, int64_t K, GgmlType partner, SimdLevel level);

// The one horizontal-sum order: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), as llama.cpp's hsum_float_8.
inline float hsum_lanes(const float l[kLanes]) {
  const float a = l[0] + l[4], b = l[1] + l[5], c = l[2] + l[6], d = l[3] + l[7];
  return (a + c) + (b + d);
}


}  // namespace ponder::matmul_detail
