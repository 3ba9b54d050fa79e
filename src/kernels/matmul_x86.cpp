// x86 SIMD tiles for matmul (AVX-512 VL/BW/VNNI, F16C, FMA on 256-bit registers) for the float
// types, Q8_0 (Q8x8), Q4_0 and IQ4_NL (Q4x8), and the dispatch to the other quantized types' tiles. Each
// tile performs, per output element, exactly the lane arithmetic of the portable path in matmul.cpp.
// The tiles are compiled for AVX-512 whatever the build's target and run only when have_simd()
// finds the features on the CPU (kernels/simd_x86.h).
#include "kernels/matmul_internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/cpu.h"
#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder::matmul_detail {

#if PONDER_SIMD

PONDER_SIMD_BEGIN

namespace {

// 16 float lanes: F32 as is, F16 and BF16 widened; one scalar for the tail.
struct LoadF32 {
  using T = float;
  static __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
  static float at(const float* p, int64_t k) { return p[k]; }
  static constexpr bool kDoubleTail = false;
};
struct LoadF16 {
  using T = uint16_t;
  static __m512 load16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static float at(const uint16_t* p, int64_t k) { return fp16_to_fp32(p[k]); }
  static constexpr bool kDoubleTail = true;  // llama.cpp's F16 dot adds its tail in double
};
struct LoadBF16 {
  using T = uint16_t;
  static __m512 load16(const uint16_t* p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
  }
  static float at(const uint16_t* p, int64_t k) { return bf16_to_fp32(p[k]); }
  static constexpr bool kDoubleTail = false;
};

// F32/F16/BF16 weights (Rows layout), kTileRows rows against NT activation rows of the same
// type: 64 lanes per output (4 chunks of 16), the fixed reduction, then the tail, as the portable
// path. One activation row keeps its 4 x NR chunk accumulators in registers; several rows run
// the k loop once per chunk (chunk j: inputs 16j..16j+15 of every 64), parking each chunk's sums.
template <typename L, int NT>
void tile_float(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
                int nt) {
  using T = typename L::T;
  constexpr int NR = kTileRows;
  const int64_t K = wv.n_cols, np = K & ~int64_t(63);
  const T* w[NR];
  const T* x[NT];
  for (int r = 0; r < NR; ++r) w[r] = reinterpret_cast<const T*>(wv.row(n + (r < nr ? r : 0)));
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const T*>(xa.row(t + (i < nt ? i : 0)));
  __m512 chunk[4][NR][NT];  // chunk[j][r][i]: lanes of chunk j
  if constexpr (NT == 1) {
    for (int j = 0; j < 4; ++j)
      for (int r = 0; r < NR; ++r) chunk[j][r][0] = _mm512_setzero_ps();
    for (int64_t k = 0; k < np; k += 64)
      for (int j = 0; j < 4; ++j) {
        const __m512 xv = L::load16(x[0] + k + 16 * j);
        for (int r = 0; r < NR; ++r) chunk[j][r][0] = _mm512_fmadd_ps(L::load16(w[r] + k + 16 * j), xv, chunk[j][r][0]);
      }
  } else {
    for (int j = 0; j < 4; ++j) {
      __m512 acc[NR][NT];
      for (int r = 0; r < NR; ++r)
        for (int i = 0; i < NT; ++i) acc[r][i] = _mm512_setzero_ps();
      for (int64_t k = 16 * j; k < np; k += 64) {
        __m512 wv16[NR];
        for (int r = 0; r < NR; ++r) wv16[r] = L::load16(w[r] + k);
        for (int i = 0; i < NT; ++i) {
          const __m512 xv = L::load16(x[i] + k);
          for (int r = 0; r < NR; ++r) acc[r][i] = _mm512_fmadd_ps(wv16[r], xv, acc[r][i]);
        }
      }
      for (int r = 0; r < NR; ++r)
        for (int i = 0; i < NT; ++i) chunk[j][r][i] = acc[r][i];
    }
  }
  for (int i = 0; i < nt; ++i)
    for (int r = 0; r < nr; ++r) {
      const __m512 lanes = _mm512_add_ps(_mm512_add_ps(chunk[0][r][i], chunk[2][r][i]),
                                         _mm512_add_ps(chunk[1][r][i], chunk[3][r][i]));
      float sum = _mm512_reduce_add_ps(lanes);
      if (L::kDoubleTail) {
        double d = sum;
        for (int64_t k = np; k < K; ++k) d += double(L::at(w[r], k) * L::at(x[i], k));
        sum = float(d);
      } else {
        for (int64_t k = np; k < K; ++k) sum = std::fma(L::at(w[r], k), L::at(x[i], k), sum);
      }
      y[i * ldy + r] = sum;
    }
}

// Q8_0 weights in the Q8x8 layout: a group of 8 rows (one per float lane) against NT tokens.
// Chunk c of a block (inputs 4c..4c+3) is llama.cpp's lane c: vpdpbusd gives its exact integer
// sum for all 8 rows at once (the +128 weight offset cancelled by starting at corr[c]); each
// chunk keeps its own float accumulator, acc[c] = fma(dw * dx, sum_c, acc[c]), block after
// block; at the end the chunks are added as ((c0+c4)+(c2+c6)) + ((c1+c5)+(c3+c7)).
template <int NT>
void tile_q8x8(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
               int) {
  const int64_t nb = wv.n_cols / kQ8Block;
  const auto* g = reinterpret_cast<const BlockQ8x8*>(wv.data) + (n / kQ8GroupRows) * nb;
  const ActBlockQ8* x[NT];
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const ActBlockQ8*>(xa.row(t + i));
  __m256 acc[NT][8];
  for (int i = 0; i < NT; ++i)
    for (int c = 0; c < 8; ++c) acc[i][c] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ8x8& gb = g[b];
    // Decode streams the weights from memory once per step; prefetching a few blocks ahead keeps
    // more loads in flight than the hardware prefetcher alone (+50% bandwidth measured here).
    prefetch_lines(reinterpret_cast<const char*>(&gb) + kPrefetchBytes, int(sizeof(BlockQ8x8)));
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb.d)));
    __m256 d[NT];
    for (int i = 0; i < NT; ++i) d[i] = _mm256_mul_ps(dw, _mm256_set1_ps(x[i][b].d));
    for (int c = 0; c < 8; ++c) {
      const __m256i wq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb.qs[c]));
      for (int i = 0; i < NT; ++i) {
        // Both broadcasts straight from memory (a load each, no trip through a general register).
        const __m256i sum = _mm256_dpbusd_epi32(broadcast32(x[i][b].corr + c), wq, broadcast32(x[i][b].qs + 4 * c));
        acc[i][c] = _mm256_fmadd_ps(d[i], _mm256_cvtepi32_ps(sum), acc[i][c]);
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

// Q4_0 weights in the Q4x8 layout (8 rows), llama.cpp's 8-row repacked order: per block and
// row the exact integer sum of the 32 products (vpdpbusd on the nibbles 0..15 as unsigned bytes,
// starting from -8 * sum(x) for their offset), then acc = fma(sum, dw * dx, acc). IQ4_NL (kIQ4NL,
// same bytes) takes the same order over its table values, looked up as value + 128 (vpshufb) and
// started from -128 * sum(x).
template <int NT, bool kIQ4NL>
void tile_q4x8(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
               int) {
  const int64_t nb = wv.n_cols / kQK;
  const auto* g = reinterpret_cast<const BlockQ4x8*>(wv.data) + (n / kQ8GroupRows) * nb;
  const ActBlockQ8* x[NT];
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const ActBlockQ8*>(xa.row(t + i));
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256i table = _mm256_setzero_si256();
  if constexpr (kIQ4NL) {
    alignas(16) uint8_t values[16];
    for (int v = 0; v < 16; ++v) values[v] = uint8_t(kValuesIQ4NL[v] + 128);
    table = _mm256_broadcastsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(values)));
  }
  __m256 acc[NT];
  for (int i = 0; i < NT; ++i) acc[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ4x8& gb = g[b];
    prefetch_lines(reinterpret_cast<const char*>(&gb) + kPrefetchBytes, int(sizeof(BlockQ4x8)));
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb.d)));
    __m256i wq[8];  // wq[c]: weights 4c..4c+3 of the 8 rows
    for (int c = 0; c < 4; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb.qs[c]));
      wq[c] = _mm256_and_si256(v, low4);
      wq[c + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      if constexpr (kIQ4NL) {
        wq[c] = _mm256_shuffle_epi8(table, wq[c]);
        wq[c + 4] = _mm256_shuffle_epi8(table, wq[c + 4]);
      }
    }
    for (int i = 0; i < NT; ++i) {
      const ActBlockQ8& xb = x[i][b];
      __m256i s0 = _mm256_set1_epi32((kIQ4NL ? -128 : -8) * xb.sum), s1 = _mm256_setzero_si256();
      for (int c = 0; c < 8; c += 2) {
        s0 = _mm256_dpbusd_epi32(s0, wq[c], broadcast32(xb.qs + 4 * c));
        s1 = _mm256_dpbusd_epi32(s1, wq[c + 1], broadcast32(xb.qs + 4 * c + 4));
      }
      const __m256 sum = _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1));
      acc[i] = _mm256_fmadd_ps(sum, _mm256_mul_ps(dw, _mm256_set1_ps(xb.d)), acc[i]);
    }
  }
  const __mmask8 m = tail_mask(nr);
  for (int i = 0; i < NT; ++i) _mm256_mask_storeu_ps(y + i * ldy, m, acc[i]);
}

template <int NT>
TileFn tile_for(GgmlType type, WeightLayout layout) {
  switch (type) {
    case GgmlType::F32: return tile_float<LoadF32, NT == 1 ? 1 : kTileToks>;
    case GgmlType::F16: return tile_float<LoadF16, NT == 1 ? 1 : kTileToks>;
    case GgmlType::BF16: return tile_float<LoadBF16, NT == 1 ? 1 : kTileToks>;
    case GgmlType::Q8_0: return layout == WeightLayout::Q8x8 ? tile_q8x8<NT> : nullptr;
    case GgmlType::Q4_0: return layout == WeightLayout::Q4x8 ? tile_q4x8<NT, false> : nullptr;
    case GgmlType::IQ4_NL: return layout == WeightLayout::Q4x8 ? tile_q4x8<NT, true> : nullptr;
    default: return nullptr;  // the other quantized types run the portable path
  }
}

}  // namespace
PONDER_SIMD_END

TileFn simd_tile(const WeightView& w, int nt) {
  if (TileFn f = simd_tile_k(w, nt)) return f;
  if (TileFn f = simd_tile_legacy(w, nt)) return f;
  // Q8x8 and Q4x8 tiles take exactly nt tokens (nt <= their tile size); float tiles any nt <= kTileToks.
  if (w.layout == WeightLayout::Q4x8) {
    switch (nt) {
      case 1: return tile_for<1>(w.type, w.layout);
      case 2: return tile_for<2>(w.type, w.layout);
      case 3: return tile_for<3>(w.type, w.layout);
      default: return tile_for<4>(w.type, w.layout);
    }
  }
  switch (nt) {
    case 1: return tile_for<1>(w.type, w.layout);
    case 2: return tile_for<2>(w.type, w.layout);
    default: return tile_for<kQ8TileToks>(w.type, w.layout);
  }
}
bool have_simd() {
  static const bool ok = cpu_features().avx512_kernels();
  return ok;
}

#else

TileFn simd_tile(const WeightView&, int) { return nullptr; }
bool have_simd() { return false; }

#endif

}  // namespace ponder::matmul_detail
