#pragma once
// Shared by the matmul driver (matmul.cpp), the x86 SIMD tiles (matmul_x86.cpp for the float
// types and Q8_0/Q4_0, quant_x86_k.cpp for the k-quants, quant_x86_legacy.cpp for the other
// legacy quants) and the SIMD activation quantizers (quant_x86_act.cpp).
#include <cstdint>
#include <cstdlib>

#include "kernels/matmul.h"

#include "kernels/simd_x86.h"

namespace ponder::matmul_detail {

constexpr int kLanes = 8;        // a Q8_0 block's 8 integer lane sums (4 inputs each)
constexpr int kTileRows = 4;     // weight rows per tile (F32, F16, BF16, quantized Rows layout)
constexpr int kQ8GroupRows = 8;  // weight rows per tile for Q8x8 (one group)
constexpr int kTileToks = 4;     // activation rows per tile (F32, F16, BF16, quantized Rows layout)
constexpr int kQ8TileToks = 2;   // activation rows per tile for Q8x8 (8 chunk accumulators per row)
constexpr int kQ4TileToks = 4;   // activation rows per tile for Q4x8 (one accumulator per row)
constexpr int kKTileToks = 8;    // activation rows per tile for Q4Kx8 and the k-quant Rows tiles
constexpr int kPanelTileToks = 16;  // activation rows per tile for Q5x8 (weights unpacked once per tile)

// Computes y[(t+i)*ldy + n+r] for r < nr, i < nt.
using TileFn = void (*)(float* y, int64_t ldy, const WeightView& w, int64_t n, int nr, const PackedActivations& x,
                        int64_t t, int nt);

// Weight rows a tile covers for this view; threads split the rows in multiples of it.
inline int tile_rows(const WeightView& w) { return w.layout == WeightLayout::Rows ? kTileRows : kQ8GroupRows; }
inline int tile_toks(const WeightView& w) {
  switch (w.layout) {
    case WeightLayout::Q8x8: return kQ8TileToks;
    case WeightLayout::Q4x8: return kQ4TileToks;
    case WeightLayout::Q4Kx8: return kKTileToks;
    case WeightLayout::Q5x8: return kPanelTileToks;
    default: return w.type == GgmlType::Q6_K || w.type == GgmlType::Q5_K || w.type == GgmlType::Q4_K ? kKTileToks : kTileToks;
  }
}

// The SIMD tile for a matrix (its type, layout and order) and nt tokens, or nullptr when there is
// none (the portable path runs instead). Quantized tiles take exactly nt tokens.
TileFn simd_tile(const WeightView& w, int nt);
// Whether this build has the SIMD tiles and this CPU can run them (checked once).
bool have_simd();
// The per-group parts of simd_tile (nullptr where the group has no tile for the view).
TileFn simd_tile_k(const WeightView& w, int nt);       // quant_x86_k.cpp
TileFn simd_tile_legacy(const WeightView& w, int nt);  // quant_x86_legacy.cpp

// quantize_activation_row (kernels/quant.h) with SIMD, bitwise equal to it; false when this build
// has no SIMD quantizer for the partner type (the caller then runs the portable one).
bool simd_quantize_activation_row(uint8_t* out, const float* x, int64_t K, GgmlType partner);

// The one horizontal-sum order: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), as llama.cpp's hsum_float_8.
inline float hsum_lanes(const float l[kLanes]) {
  const float a = l[0] + l[4], b = l[1] + l[5], c = l[2] + l[6], d = l[3] + l[7];
  return (a + c) + (b + d);
}

#if PONDER_SIMD
PONDER_SIMD_BEGIN
constexpr int kPrefetchBytes = 2048;  // how far ahead the streaming tiles prefetch their weights

// The 4 bytes at p in every 32-bit lane.
inline __m256i broadcast32(const void* p) { return _mm256_broadcastd_epi32(_mm_loadu_si32(p)); }

inline __mmask8 tail_mask(int64_t n) { return __mmask8((1u << n) - 1); }

// hsum_lanes of 8 float lanes: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)).
inline float hsum8_ps(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // l0+l4, l1+l5, l2+l6, l3+l7
  const __m128 u = _mm_add_ps(s, _mm_movehl_ps(s, s));                                  // a+c, b+d
  return _mm_cvtss_f32(_mm_add_ss(u, _mm_movehdup_ps(u)));
}

// Prefetches the 64-byte lines of [p, p + bytes) into L1.
inline void prefetch_lines(const void* p, int bytes) {
  for (int line = 0; line < bytes; line += 64) _mm_prefetch(static_cast<const char*>(p) + line, _MM_HINT_T0);
}

// How far ahead the k-quant streaming tiles (Q4Kx8, Q6_K rows) prefetch, into L2: a core's L1
// miss queue holds too few lines to cover memory latency at the bandwidth these need; L2 prefetches
// further ahead raised 1.5B Q4_K_M decode from 24.5-28.2 to 27.2-29.1 tok/s in alternating runs.
constexpr int kPrefetchL2Bytes = 8192;

// Prefetches the 64-byte lines of [p, p + bytes) into L2.
inline void prefetch_lines_l2(const void* p, int bytes) {
  for (int line = 0; line < bytes; line += 64) _mm_prefetch(static_cast<const char*>(p) + line, _MM_HINT_T1);
}
PONDER_SIMD_END
#endif

}  // namespace ponder::matmul_detail
