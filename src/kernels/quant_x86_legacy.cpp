// AVX-512 VNNI tiles for the legacy quants in llama.cpp's one-row order (see matmul_internal.h):
// Q5_0 (partner Q8_0; Q5x8 layout, and rows when the row count is not a multiple of 8), Q4_1 and
// Q5_1 (partner Q8_1; rows). Each
// performs, per output, exactly the arithmetic of the portable functions in quant_legacy.cpp: per
// block the 8 exact integer lane sums (lane j: weights 4j..4j+3), then the same float operations in
// the same order.
#include "kernels/matmul_internal.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder::matmul_detail {

#if PONDER_SIMD

PONDER_SIMD_BEGIN

namespace {

// The 32 nibbles of a 4-bit block as bytes in element order (low nibbles: weights 0..15, high: 16..31).
inline __m256i nibbles32(const uint8_t* qs) {
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

// The 5-bit values of a Q5 block: the nibble plus 16 where bit i of qh (little-endian) is set.
inline __m256i q5_values(const uint8_t* qs, const uint8_t* qh) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const __m256i q = nibbles32(qs);
  return _mm256_mask_add_epi8(q, __mmask32(bits), q, _mm256_set1_epi8(16));
}

// Rows of Q5_0 (partner Q8_0), Q4_1 or Q5_1 (partner Q8_1); kTileRows rows x NT tokens, blocks
// outermost so the tokens' blocks stay in cache across the rows.
//   Q5_0 (w = d * (q - 16)): lane j = vpdpbusd from corr[j] / 8 = -16 * (sum of the activation
//     quants 4j..4j+3), the offset taken exactly; acc[j] = fma(dw * dx, lane j, acc[j]); hsum8.
//   Q4_1, Q5_1 (w = d * q + m): summs = fma(m, s_x, summs) then the lanes of q (from zero) as
//     above, block after block; hsum8(acc) + summs.
enum class Legacy { Q5_0, Q4_1, Q5_1 };

template <int NT, Legacy kType>
void tile_legacy_rows(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa,
                      int64_t t, int) {
  using XBlock = std::conditional_t<kType == Legacy::Q5_0, ActBlockQ8, ActBlockQ8_1>;
  using WBlock = std::conditional_t<kType == Legacy::Q5_0, BlockQ5_0,
                                    std::conditional_t<kType == Legacy::Q4_1, BlockQ4_1, BlockQ5_1>>;
  const int64_t nb = wv.n_cols / kQK;
  const XBlock* x[NT];
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const XBlock*>(xa.row(t + i));
  const WBlock* w[kTileRows];
  for (int r = 0; r < kTileRows; ++r) w[r] = reinterpret_cast<const WBlock*>(wv.row(n + (r < nr ? r : 0)));
  __m256 acc[kTileRows][NT];
  float summs[kTileRows][NT] = {};
  for (int r = 0; r < kTileRows; ++r)
    for (int i = 0; i < NT; ++i) acc[r][i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    __m256i init[NT];
    __m256 dx[NT];
    for (int i = 0; i < NT; ++i) {
      if constexpr (kType == Legacy::Q5_0)
        init[i] = _mm256_srai_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i][b].corr)), 3);
      else
        init[i] = _mm256_setzero_si256();
      dx[i] = _mm256_set1_ps(x[i][b].d);
    }
    for (int r = 0; r < kTileRows; ++r) {
      if (r >= nr) break;
      const WBlock& wb = w[r][b];
      __m256i q;
      if constexpr (kType == Legacy::Q4_1)
        q = nibbles32(wb.qs);
      else
        q = q5_values(wb.qs, wb.qh);
      const __m256 dw = _mm256_set1_ps(_cvtsh_ss(wb.d));
      for (int i = 0; i < NT; ++i) {
        if constexpr (kType != Legacy::Q5_0) summs[r][i] = std::fma(_cvtsh_ss(wb.m), x[i][b].s, summs[r][i]);
        const __m256i lanes =
            _mm256_dpbusd_epi32(init[i], q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i][b].qs)));
        acc[r][i] = _mm256_fmadd_ps(_mm256_mul_ps(dw, dx[i]), _mm256_cvtepi32_ps(lanes), acc[r][i]);
      }
    }
  }
  for (int r = 0; r < nr; ++r)
    for (int i = 0; i < NT; ++i) y[i * ldy + r] = hsum8_ps(acc[r][i]) + summs[r][i];
}

// ---- Q5_0 in the Q5x8 layout: 8 rows in the float lanes, as Q8_0's Q8x8 ----
// Q5_0's one-row order is Q8_0's (acc[j] = fma(dw * dx, lane j, acc[j]) per block, then hsum8), so
// a Q5x8 block unpacked to Q8x8's form (the values q - 16 as unsigned bytes q + 112) runs through
// the Q8x8 arithmetic: chunk c of a block is lane c of all 8 rows, its exact sum from vpdpbusd
// started at corr[c] = -128 * (sum of the activation quants 4c..4c+3).

// Chunk c (weights 4c..4c+3 of the 8 rows) of a Q5x8 block as Q8x8 bytes.
inline void q5x8_chunks(const BlockQ5x8& g, __m256i w[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m70 = _mm256_set1_epi8(0x70), v16 = _mm256_set1_epi8(16);
  for (int c = 0; c < 4; ++c) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.qs[c]));
    w[c] = _mm256_ternarylogic_epi32(v, m4, m70, 0xEA);  // (v & 0x0F) | 0x70: the nibble + 112
    w[c + 4] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(v, 4), m4, m70, 0xEA);
  }
  for (int c = 0; c < 8; ++c) w[c] = _mm256_mask_add_epi8(w[c], __mmask32(g.qh[c]), w[c], v16);
}

// NT (1 or 2) tokens straight from the Q5x8 blocks (decode: the weights are read once).
template <int NT>
void q5x8_direct(float* y, int64_t ldy, const BlockQ5x8* g, int64_t nb, const ActBlockQ8* const* x, int nr) {
  __m256 acc[NT][8];
  for (int i = 0; i < NT; ++i)
    for (int c = 0; c < 8; ++c) acc[i][c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ5x8& gb = g[b];
    prefetch_lines(reinterpret_cast<const char*>(&gb) + kPrefetchBytes, int(sizeof(BlockQ5x8)));
    __m256i w[8];
    q5x8_chunks(gb, w);
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb.d)));
    for (int i = 0; i < NT; ++i) {
      const ActBlockQ8& xb = x[i][b];
      const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(xb.d));
      for (int c = 0; c < 8; ++c) {
        const __m256i sum = _mm256_dpbusd_epi32(broadcast32(xb.corr + c), w[c], broadcast32(xb.qs + 4 * c));
        acc[i][c] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sum), acc[i][c]);
      }
    }
  }
  const __mmask8 m = tail_mask(nr);
  for (int i = 0; i < NT; ++i) {
    const __m256 a = _mm256_add_ps(acc[i][0], acc[i][4]), b = _mm256_add_ps(acc[i][1], acc[i][5]);
    const __m256 c = _mm256_add_ps(acc[i][2], acc[i][6]), d = _mm256_add_ps(acc[i][3], acc[i][7]);
    _mm256_mask_storeu_ps(y + i * ldy, m, _mm256_add_ps(_mm256_add_ps(a, c), _mm256_add_ps(b, d)));
  }
}

// Up to kPanelTileToks tokens: one or two straight from the blocks; more from the group's blocks
// unpacked once into Q8x8 form (a per-thread panel), then the Q8x8 tile two tokens at a time.
void tile_q5x8(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
               int nt) {
  const int64_t nb = wv.n_cols / kQK;
  const auto* g = reinterpret_cast<const BlockQ5x8*>(wv.data) + (n / kQ8GroupRows) * nb;
  const ActBlockQ8* x[2];
  if (nt <= 2) {
    for (int i = 0; i < nt; ++i) x[i] = reinterpret_cast<const ActBlockQ8*>(xa.row(t + i));
    return nt == 1 ? q5x8_direct<1>(y, ldy, g, nb, x, nr) : q5x8_direct<2>(y, ldy, g, nb, x, nr);
  }
  thread_local std::vector<BlockQ8x8> panel;
  panel.resize(size_t(nb));
  for (int64_t b = 0; b < nb; ++b) {
    __m256i w[8];
    q5x8_chunks(g[b], w);
    std::memcpy(panel[size_t(b)].d, g[b].d, sizeof g[b].d);
    for (int c = 0; c < 8; ++c) _mm256_storeu_si256(reinterpret_cast<__m256i*>(panel[size_t(b)].qs[c]), w[c]);
  }
  const WeightView pv{.type = GgmlType::Q8_0, .data = reinterpret_cast<const uint8_t*>(panel.data()),
                      .n_rows = kQ8GroupRows, .n_cols = wv.n_cols, .layout = WeightLayout::Q8x8};
  const TileFn pair = simd_tile(pv, 2), one = simd_tile(pv, 1);
  int i = 0;
  for (; i + 2 <= nt; i += 2) pair(y + i * ldy, ldy, pv, 0, nr, xa, t + i, 2);
  if (i < nt) one(y + i * ldy, ldy, pv, 0, nr, xa, t + i, 1);
}

template <int NT>
struct Q5_0Tile {
  static constexpr TileFn fn = tile_legacy_rows<NT, Legacy::Q5_0>;
};
template <int NT>
struct Q4_1Tile {
  static constexpr TileFn fn = tile_legacy_rows<NT, Legacy::Q4_1>;
};
template <int NT>
struct Q5_1Tile {
  static constexpr TileFn fn = tile_legacy_rows<NT, Legacy::Q5_1>;
};

template <template <int> class Tile>
TileFn by_tokens(int nt) {
  switch (nt) {
    case 1: return Tile<1>::fn;
    case 2: return Tile<2>::fn;
    case 3: return Tile<3>::fn;
    default: return Tile<4>::fn;
  }
}

}  // namespace
PONDER_SIMD_END

TileFn simd_tile_legacy(const WeightView& w, int nt) {
  if (w.type == GgmlType::Q5_0 && w.layout == WeightLayout::Q5x8) return tile_q5x8;
  if (w.layout != WeightLayout::Rows) return nullptr;
  switch (w.type) {
    case GgmlType::Q5_0: return by_tokens<Q5_0Tile>(nt);
    case GgmlType::Q4_1: return by_tokens<Q4_1Tile>(nt);
    case GgmlType::Q5_1: return by_tokens<Q5_1Tile>(nt);
    default: return nullptr;
  }
}

#else

TileFn simd_tile_legacy(const WeightView&, int) { return nullptr; }

#endif

}  // namespace ponder::matmul_detail
