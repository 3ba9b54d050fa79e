#pragma once
// Shared by the matmul driver (matmul.cpp) and the x86 SIMD tiles (matmul_x86.cpp).
#include <cstdint>

#include "kernels/matmul.h"

namespace ponder::matmul_detail {

constexpr int kLanes = 8;        // a Q8_0 block's 8 integer lane sums (4 inputs each)
constexpr int kTileRows = 4;     // weight rows per tile (F32, F16, BF16)
constexpr int kQ8GroupRows = 8;  // weight rows per tile for Q8x8 (one group)
constexpr int kTileToks = 4;     // activation rows per tile (F32, F16, BF16)
constexpr int kQ8TileToks = 2;   // activation rows per tile for Q8x8 (8 chunk accumulators per row)

// Computes y[(t+i)*ldy + n+r] for r < nr, i < nt.
using TileFn = void (*)(float* y, int64_t ldy, const WeightView& w, int64_t n, int nr, const PackedActivations& x,
                        int64_t t, int nt);

// Weight rows a tile covers for this view; threads split the rows in multiples of it.
constexpr int kQ4TileToks = 4;   // activation rows per tile for Q4x8 (one accumulator per row)
inline int tile_rows(const WeightView& w) { return w.layout == WeightLayout::Rows ? kTileRows : kQ8GroupRows; }
inline int tile_toks(const WeightView& w) {
  return w.layout == WeightLayout::Q8x8 ? kQ8TileToks : w.layout == WeightLayout::Q4x8 ? kQ4TileToks : kTileToks;
}

// The SIMD tile for a weight type and layout, or nullptr when there is none (the portable path
// runs instead).
TileFn simd_tile(GgmlType type, WeightLayout layout, int nt);
bool have_simd();

// The one horizontal-sum order: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), as llama.cpp's hsum_float_8.
inline float hsum_lanes(const float l[kLanes]) {
  const float a = l[0] + l[4], b = l[1] + l[5], c = l[2] + l[6], d = l[3] + l[7];
  return (a + c) + (b + d);
}

}  // namespace ponder::matmul_detail
