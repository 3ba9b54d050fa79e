// x86 SIMD tiles for matmul (AVX-512 VL/BW/VNNI, F16C, FMA on 256-bit registers). Each tile
// performs, per output element, exactly the lane arithmetic of the portable path in matmul.cpp.
#include "kernels/matmul_internal.h"

#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__F16C__) && \
    defined(__FMA__)
#define PONDER_SIMD 1
#include <immintrin.h>
#else
#define PONDER_SIMD 0
#endif

namespace ponder::matmul_detail {

#if PONDER_SIMD

namespace {

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // a b c d
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));                                   // a+c b+d
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

inline __mmask8 tail_mask(int64_t n) { return __mmask8((1u << n) - 1); }

// Float lanes: F32 as is, F16 and BF16 widened. Masked loads read the tail as zeros.
struct LoadF32 {
  using T = float;
  static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
  static __m256 load(const float* p, __mmask8 m) { return _mm256_maskz_loadu_ps(m, p); }
};
struct LoadF16 {
  using T = uint16_t;
  static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static __m256 load(const uint16_t* p, __mmask8 m) { return _mm256_cvtph_ps(_mm_maskz_loadu_epi16(m, p)); }
};
struct LoadBF16 {
  using T = uint16_t;
  static __m256 widen(__m128i h) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); }
  static __m256 load(const uint16_t* p) { return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
  static __m256 load(const uint16_t* p, __mmask8 m) { return widen(_mm_maskz_loadu_epi16(m, p)); }
};

// F32/F16/BF16 weights (Rows layout) against activations of the same type: fma per lane.
template <typename L, int NT>
void tile_float(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
                int) {
  using T = typename L::T;
  constexpr int NR = kTileRows;
  const int64_t K = wv.n_cols;
  const T* w[NR];
  const T* x[NT];
  for (int r = 0; r < NR; ++r) w[r] = reinterpret_cast<const T*>(wv.row(n + (r < nr ? r : 0)));
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const T*>(xa.row(t + i));
  __m256 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int i = 0; i < NT; ++i) acc[r][i] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + kLanes <= K; k += kLanes) {
    __m256 wr[NR];
    for (int r = 0; r < NR; ++r) wr[r] = L::load(w[r] + k);
    for (int i = 0; i < NT; ++i) {
      const __m256 xv = L::load(x[i] + k);
      for (int r = 0; r < NR; ++r) acc[r][i] = _mm256_fmadd_ps(wr[r], xv, acc[r][i]);
    }
  }
  if (k < K) {
    const __mmask8 m = tail_mask(K - k);
    __m256 wr[NR];
    for (int r = 0; r < NR; ++r) wr[r] = L::load(w[r] + k, m);
    for (int i = 0; i < NT; ++i) {
      const __m256 xv = L::load(x[i] + k, m);
      for (int r = 0; r < NR; ++r) acc[r][i] = _mm256_fmadd_ps(wr[r], xv, acc[r][i]);
    }
  }
  for (int r = 0; r < nr; ++r)
    for (int i = 0; i < NT; ++i) y[i * ldy + r] = hsum(acc[r][i]);
}

// One Q8_0 block of one (row, token) pair: the 8 lane sums of w*x as exact integers. The
// weights arrive offset to unsigned (w + 128) and the accumulator starts at -128 * sum(x) per
// lane (neg_corr), so vpdpbusd (unsigned x signed) yields sum(w * x).
inline __m256 q8_lane_sums(__m256i w_plus_128, const ActBlockQ8& xb) {
  const __m256i acc = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.neg_corr));
  const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs));
  return _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(acc, w_plus_128, qx));
}

// Q8_0 weights in the Q8x4 layout: one group of 4 rows against NT tokens. Per block, the 4 x NT
// scale products dw[r] * dx[i] are formed with one multiply per token and read back broadcast.
template <int NT>
void tile_q8x4(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
               int) {
  const int64_t nb = wv.n_cols / kQ8Block;
  const auto* g = reinterpret_cast<const BlockQ8x4*>(wv.data) + (n / kTileRows) * nb;
  const ActBlockQ8* x[NT];
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const ActBlockQ8*>(xa.row(t + i));
  __m256 acc[kTileRows][NT];
  for (int r = 0; r < kTileRows; ++r)
    for (int i = 0; i < NT; ++i) acc[r][i] = _mm256_setzero_ps();
  alignas(16) float d[NT][kTileRows];
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ8x4& gb = g[b];
    const __m128 dw = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(gb.d)));
    for (int i = 0; i < NT; ++i) _mm_store_ps(d[i], _mm_mul_ps(dw, _mm_set1_ps(x[i][b].d)));
    __m256i wq[kTileRows];
    for (int r = 0; r < kTileRows; ++r) wq[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb.qs[r]));
    for (int i = 0; i < NT; ++i)
      for (int r = 0; r < kTileRows; ++r)
        acc[r][i] = _mm256_fmadd_ps(_mm256_set1_ps(d[i][r]), q8_lane_sums(wq[r], x[i][b]), acc[r][i]);
  }
  for (int r = 0; r < nr; ++r)
    for (int i = 0; i < NT; ++i) y[i * ldy + r] = hsum(acc[r][i]);
}

// Q8_0 weights as stored in GGUF (Rows layout), for views that were not repacked.
template <int NT>
void tile_q8_rows(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa,
                  int64_t t, int) {
  const int64_t nb = wv.n_cols / kQ8Block;
  const __m256i offset = _mm256_set1_epi8(char(0x80));
  for (int r = 0; r < nr; ++r) {
    const auto* w = reinterpret_cast<const BlockQ8_0*>(wv.row(n + r));
    for (int i = 0; i < NT; ++i) {
      const auto* x = reinterpret_cast<const ActBlockQ8*>(xa.row(t + i));
      __m256 acc = _mm256_setzero_ps();
      for (int64_t b = 0; b < nb; ++b) {
        const __m256i wq = _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[b].qs)), offset);
        const float dwx = _cvtsh_ss(w[b].d) * x[b].d;
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dwx), q8_lane_sums(wq, x[b]), acc);
      }
      y[i * ldy + r] = hsum(acc);
    }
  }
}

template <int NT>
TileFn tile_for(GgmlType type, WeightLayout layout) {
  switch (type) {
    case GgmlType::F32: return tile_float<LoadF32, NT>;
    case GgmlType::F16: return tile_float<LoadF16, NT>;
    case GgmlType::BF16: return tile_float<LoadBF16, NT>;
    case GgmlType::Q8_0: return layout == WeightLayout::Q8x4 ? tile_q8x4<NT> : tile_q8_rows<NT>;
  }
  return nullptr;
}

}  // namespace

TileFn simd_tile(GgmlType type, WeightLayout layout, int nt) {
  switch (nt) {
    case 1: return tile_for<1>(type, layout);
    case 2: return tile_for<2>(type, layout);
    case 3: return tile_for<3>(type, layout);
    default: return tile_for<4>(type, layout);
  }
}
bool have_simd() { return true; }

#else

TileFn simd_tile(GgmlType, WeightLayout, int) { return nullptr; }
bool have_simd() { return false; }

#endif

}  // namespace ponder::matmul_detail
