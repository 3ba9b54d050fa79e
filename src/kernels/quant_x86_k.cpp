// AVX-512 VNNI tiles for the k-quants (see matmul_internal.h): Q4_K in the Q4Kx8 layout (llama.cpp's
// repacked gemv and 4-token gemm orders, chosen per token by its RowShape); Q6_K, Q5_K and Q4_K
// (matrices whose row count is not a multiple of 8) in rows (llama.cpp's one-row orders). Each
// performs, per output, exactly the arithmetic of the portable functions in quant_k.cpp: the integer parts are exact (vpdpbusd, vpmaddubsw and vpmaddwd never
// overflow for these ranges, and integer sums may be taken in any order), the float operations are
// the same operations in the same order.
#include "kernels/matmul_internal.h"

#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder::matmul_detail {

#if PONDER_SIMD

PONDER_SIMD_BEGIN

namespace {

// ---- Q4_K, Q4Kx8 layout: 8 rows in the 8 float lanes ----

// The 64 six-bit values of a BlockQ4Kx8 scale or min array from its 48-byte packing (matmul.h):
// byte k of the result is entry k.
inline __m512i unpack6x64(const uint8_t* p) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m512i low = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(lo, m4)),
                                         _mm256_and_si256(_mm256_srli_epi16(lo, 4), m4), 1);
  // 128-bit lane q takes bits 2q..2q+1 of the 16 top-bit bytes.
  const __m512i top = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32)));
  const __m512i shift = _mm512_set_epi32(0x00060006, 0x00060006, 0x00060006, 0x00060006, 0x00040004, 0x00040004,
                                         0x00040004, 0x00040004, 0x00020002, 0x00020002, 0x00020002, 0x00020002, 0, 0,
                                         0, 0);
  const __m512i hi = _mm512_and_si512(_mm512_srlv_epi16(top, shift), _mm512_set1_epi8(3));
  return _mm512_or_si512(low, _mm512_slli_epi16(hi, 4));
}

// 128-bit lane p (0..3) of v.
inline __m128i lane128(__m512i v, int p) {
  switch (p) {
    case 0: return _mm512_castsi512_si128(v);
    case 1: return _mm512_extracti32x4_epi32(v, 1);
    case 2: return _mm512_extracti32x4_epi32(v, 2);
    default: return _mm512_extracti32x4_epi32(v, 3);
  }
}

// NT tokens against one group of 8 Q4_K rows, every token in the gemm order (kGemm: one fma per
// pair of sub-blocks) or every one in the gemv order (one fma per super-block):
//   per pair p and row, D_lo / D_hi = the exact dot products of sub-blocks 2p / 2p+1 (vpdpbusd of
//   the nibbles against broadcast activation quads; the high nibbles are taken in place, as 16 times
//   their value, and the factor 16 shifted out of the exact product at the end),
//   S_p = sc[2p] * D_lo + sc[2p+1] * D_hi,
//   M_p = mn[2p] * Sx[2p] + mn[2p+1] * Sx[2p+1] (Sx: the sub-blocks' activation sums);
//   gemm: acc = fma(float(S_p), dw * dx, acc), accm = fma(float(M_p), dminw * dx, accm) per pair;
//   gemv: the same once per super-block over S = sum_p S_p, M = sum_p M_p. Result acc - accm.
template <int NT, bool kGemm>
void q4kx8_tokens(float* y, int64_t ldy, const BlockQ4Kx8* g, int64_t nb, const BlockQ8_K* const* x, int nr) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m4_hi = _mm256_set1_epi8(char(0xF0));
  const __m256i ones16 = _mm256_set1_epi16(1);
  __m256 acc[NT], accm[NT];
  for (int i = 0; i < NT; ++i) acc[i] = accm[i] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const BlockQ4Kx8& gb = g[b];
    prefetch_lines_l2(reinterpret_cast<const char*>(&gb) + kPrefetchL2Bytes, int(sizeof(BlockQ4Kx8)));
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb.d)));
    const __m256 dmw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(gb.dmin)));
    const __m512i sc = unpack6x64(gb.scales), mn = unpack6x64(gb.scales + 48);
    __m256 d[NT], dm[NT];
    alignas(16) int32_t sx_pairs[NT][4];  // (Sx[2p], Sx[2p+1]) as two int16 in one int32
    __m256i s_sum[NT], m_sum[NT];
    for (int i = 0; i < NT; ++i) {
      const BlockQ8_K& xb = x[i][b];
      const __m256 xd = _mm256_set1_ps(xb.d);
      d[i] = _mm256_mul_ps(dw, xd);
      dm[i] = _mm256_mul_ps(dmw, xd);
      const __m256i sx = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.bsums)), ones16);
      _mm_store_si128(reinterpret_cast<__m128i*>(sx_pairs[i]), _mm256_cvtepi32_epi16(sx));
      s_sum[i] = m_sum[i] = _mm256_setzero_si256();
    }
    for (int p = 0; p < 4; ++p) {
      const __m512i scp = _mm512_cvtepu8_epi32(lane128(sc, p));
      const __m256i sc_lo = _mm512_castsi512_si256(scp), sc_hi = _mm512_extracti64x4_epi64(scp, 1);
      const __m256i mnp = _mm256_cvtepu8_epi16(lane128(mn, p));
      // Two accumulator chains per sub-block (even and odd quads) for a lone token.
      constexpr int kChains = NT == 1 ? 2 : 1;
      __m256i dlo[NT][kChains], dhi[NT][kChains];
      for (int i = 0; i < NT; ++i)
        for (int c = 0; c < kChains; ++c) dlo[i][c] = dhi[i][c] = _mm256_setzero_si256();
      for (int j = 0; j < 8; ++j) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gb.qs[p][j]));
        const __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(v, m4_hi);
        for (int i = 0; i < NT; ++i) {
          const int8_t* xq = x[i][b].qs + 64 * p + 4 * j;
          dlo[i][j % kChains] = _mm256_dpbusd_epi32(dlo[i][j % kChains], lo, broadcast32(xq));
          dhi[i][j % kChains] = _mm256_dpbusd_epi32(dhi[i][j % kChains], hi, broadcast32(xq + 32));
        }
      }
      for (int i = 0; i < NT; ++i) {
        __m256i dl = dlo[i][0], dh = dhi[i][0];
        if constexpr (kChains == 2) {
          dl = _mm256_add_epi32(dl, dlo[i][1]);
          dh = _mm256_add_epi32(dh, dhi[i][1]);
        }
        const __m256i s =
            _mm256_add_epi32(_mm256_mullo_epi32(dl, sc_lo), _mm256_srai_epi32(_mm256_mullo_epi32(dh, sc_hi), 4));
        const __m256i m = _mm256_madd_epi16(mnp, _mm256_set1_epi32(sx_pairs[i][p]));
        if constexpr (kGemm) {
          acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), d[i], acc[i]);
          accm[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), dm[i], accm[i]);
        } else {
          s_sum[i] = _mm256_add_epi32(s_sum[i], s);
          m_sum[i] = _mm256_add_epi32(m_sum[i], m);
        }
      }
    }
    if constexpr (!kGemm)
      for (int i = 0; i < NT; ++i) {
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s_sum[i]), d[i], acc[i]);
        accm[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m_sum[i]), dm[i], accm[i]);
      }
  }
  const __mmask8 mask = tail_mask(nr);
  for (int i = 0; i < NT; ++i) _mm256_mask_storeu_ps(y + i * ldy, mask, _mm256_sub_ps(acc[i], accm[i]));
}

// Up to kKTileToks tokens, in runs of at most 4 (more would spill the accumulators); a run whose
// tokens need different orders goes token by token.
template <int NT>
void tile_q4kx8(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
                int) {
  const int64_t nb = wv.n_cols / kQK_K;
  const auto* g = reinterpret_cast<const BlockQ4Kx8*>(wv.data) + (n / kQ8GroupRows) * nb;
  const BlockQ8_K* x[NT];
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const BlockQ8_K*>(xa.row(t + i));
  auto gemm = [&](int i) { return (xa.shapes[size_t(t + i)] & kRowInGroupOf4) != 0; };
  constexpr int kRun = NT < 4 ? NT : 4;
  for (int i0 = 0; i0 < NT; i0 += kRun) {
    const int m = NT - i0 < kRun ? NT - i0 : kRun;
    int n_gemm = 0;
    for (int i = i0; i < i0 + m; ++i) n_gemm += gemm(i);
    float* yi = y + i0 * ldy;
    if (m == kRun && n_gemm == kRun) {
      q4kx8_tokens<kRun, true>(yi, ldy, g, nb, x + i0, nr);
    } else if (m == kRun && n_gemm == 0) {
      q4kx8_tokens<kRun, false>(yi, ldy, g, nb, x + i0, nr);
    } else {
      for (int i = i0; i < i0 + m; ++i) {
        if (gemm(i))
          q4kx8_tokens<1, true>(y + i * ldy, ldy, g, nb, x + i, nr);
        else
          q4kx8_tokens<1, false>(y + i * ldy, ldy, g, nb, x + i, nr);
      }
    }
  }
}

// ---- Q6_K rows: llama.cpp's one-row order, 8 lanes per row and token ----

// The 256 values 0..63 of a Q6_K super-block as 8 runs of 32 (run k: weights 32k..32k+31): the
// low nibbles from ql, bits 4..5 from qh (each `(l & 0x0F) | (h & 0x30)` one vpternlogd).
inline void q6k_values(const BlockQ6_K& b, __m256i q[8]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  for (int h = 0; h < 2; ++h) {
    const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h));
    const __m256i l2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
    q[4 * h + 0] = _mm256_ternarylogic_epi32(l1, m4, _mm256_and_si256(_mm256_slli_epi16(hb, 4), m30), 0xEA);
    q[4 * h + 1] = _mm256_ternarylogic_epi32(l2, m4, _mm256_and_si256(_mm256_slli_epi16(hb, 2), m30), 0xEA);
    q[4 * h + 2] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l1, 4), m4, _mm256_and_si256(hb, m30), 0xEA);
    q[4 * h + 3] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l2, 4), m4,
                                             _mm256_and_si256(_mm256_srli_epi16(hb, 2), m30), 0xEA);
  }
}

// Per row and token: lane m (m = 0..7) of a super-block = sum over the 8 runs k of
// scale[2k + m/4] * (products of weights 32k + 4m .. 32k + 4m + 3), minus 32 * (scale[2m] * bsum[2m]
// + scale[2m+1] * bsum[2m+1]); acc[m] = fma(dx * dw, float(lane m), acc[m]); hsum8 at the end.
// vpmaddubsw pairs (q <= 63, |x| <= 127: no saturation), vpdpwssd with the run's two scales.
template <int NT>
void tile_q6k(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa, int64_t t,
              int) {
  const int64_t nb = wv.n_cols / kQK_K;
  const int64_t row_bytes = nb * int64_t(sizeof(BlockQ6_K));
  const BlockQ8_K* x[NT];
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const BlockQ8_K*>(xa.row(t + i));
  // Run k's scales, words 0..7: scale 2k, words 8..15: scale 2k + 1, picked in-lane (vpshufb) from
  // the 16 scales as words with scales 0..7 (runs 0..3) or 8..15 (runs 4..7) in both halves.
  __m256i run_pick[4];
  for (int k = 0; k < 4; ++k) {
    const char lo = char(4 * k), hi = char(4 * k + 2);
    run_pick[k] = _mm256_setr_epi8(lo, char(lo + 1), lo, char(lo + 1), lo, char(lo + 1), lo, char(lo + 1), lo,
                                   char(lo + 1), lo, char(lo + 1), lo, char(lo + 1), lo, char(lo + 1), hi,
                                   char(hi + 1), hi, char(hi + 1), hi, char(hi + 1), hi, char(hi + 1), hi,
                                   char(hi + 1), hi, char(hi + 1), hi, char(hi + 1), hi, char(hi + 1));
  }
  for (int r = 0; r < nr; ++r) {
    const auto* w = reinterpret_cast<const BlockQ6_K*>(wv.data + (n + r) * row_bytes);
    __m256 acc[NT];
    for (int i = 0; i < NT; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const BlockQ6_K& wb = w[b];
      prefetch_lines_l2(reinterpret_cast<const char*>(&wb) + kPrefetchL2Bytes, int(sizeof(BlockQ6_K)));
      __m256i q[8], sc[8];
      q6k_values(wb, q);
      const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb.scales)));
      const __m256i sc_lo = _mm256_permute2x128_si256(sc16, sc16, 0x00), sc_hi = _mm256_permute2x128_si256(sc16, sc16, 0x11);
      for (int k = 0; k < 4; ++k) {
        sc[k] = _mm256_shuffle_epi8(sc_lo, run_pick[k]);
        sc[k + 4] = _mm256_shuffle_epi8(sc_hi, run_pick[k]);
      }
      const float dw = _cvtsh_ss(wb.d);
      for (int i = 0; i < NT; ++i) {
        const BlockQ8_K& xb = x[i][b];
        const __m256i corr =
            _mm256_madd_epi16(sc16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.bsums)));
        __m256i lane[4] = {_mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5)),
                           _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int k = 0; k < 8; ++k) {
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs + 32 * k));
          lane[k % 4] = _mm256_dpwssd_epi32(lane[k % 4], _mm256_maddubs_epi16(q[k], xq), sc[k]);
        }
        const __m256i l = _mm256_add_epi32(_mm256_add_epi32(lane[0], lane[1]), _mm256_add_epi32(lane[2], lane[3]));
        acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(xb.d * dw), _mm256_cvtepi32_ps(l), acc[i]);
      }
    }
    for (int i = 0; i < NT; ++i) y[i * ldy + r] = hsum8_ps(acc[i]);
  }
}

// ---- Q4_K and Q5_K rows: llama.cpp's one-row orders ----

// The 8 six-bit scales (bytes 0..7) and mins (bytes 8..15) of a Q4_K/Q5_K super-block
// (get_scale_min_k4, as llama.cpp unpacks them with 32-bit masks).
inline __m128i k4_scales_mins(const uint8_t s[12]) {
  uint32_t u[4];
  std::memcpy(u, s, 12);
  constexpr uint32_t kMask1 = 0x3f3f3f3f, kMask2 = 0x0f0f0f0f, kMask3 = 0x03030303;
  u[3] = ((u[2] >> 4) & kMask2) | (((u[1] >> 6) & kMask3) << 4);
  const uint32_t mins_lo = u[1] & kMask1;
  u[1] = (u[2] & kMask2) | (((u[0] >> 6) & kMask3) << 4);
  u[2] = mins_lo;
  u[0] &= kMask1;
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(u));
}

// Per row and token: lane m of a super-block = sum over the 8 sub-blocks s of scale[s] * (products
// of weights 32s + 4m .. 32s + 4m + 3) (vpmaddubsw pairs, vpdpwssd with the scale), then
// acc[m] = fma(dx * dw, float(lane m), acc[m]). The mins: Q4_K in 4 lanes,
// accm[k] = fma(-dx * dminw, float(min[2k] * Sx[2k] + min[2k+1] * Sx[2k+1]), accm[k]), result
// hsum8(acc) + ((accm0 + accm2) + (accm1 + accm3)); Q5_K once per super-block,
// summs = fma(-dx * dminw, float(sum_s min[s] * Sx[s]), summs), result hsum8(acc) + summs.
template <int NT, bool kQ5>
void tile_k4_rows(float* y, int64_t ldy, const WeightView& wv, int64_t n, int nr, const PackedActivations& xa,
                  int64_t t, int) {
  const int64_t nb = wv.n_cols / kQK_K;
  const int64_t row_bytes = wv.row_bytes();
  const BlockQ8_K* x[NT];
  for (int i = 0; i < NT; ++i) x[i] = reinterpret_cast<const BlockQ8_K*>(xa.row(t + i));
  const __m256i m4 = _mm256_set1_epi8(0x0F), v16 = _mm256_set1_epi8(16), ones16 = _mm256_set1_epi16(1);
  for (int r = 0; r < nr; ++r) {
    const uint8_t* w = wv.data + (n + r) * row_bytes;
    __m256 acc[NT];
    __m128 accm[NT];
    float summs[NT];
    for (int i = 0; i < NT; ++i) {
      acc[i] = _mm256_setzero_ps();
      accm[i] = _mm_setzero_ps();
      summs[i] = 0;
    }
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = w + b * (kQ5 ? int64_t(sizeof(BlockQ5_K)) : int64_t(sizeof(BlockQ4_K)));
      const uint16_t dh = reinterpret_cast<const BlockQ4_K*>(blk)->d, dminh = reinterpret_cast<const BlockQ4_K*>(blk)->dmin;
      const uint8_t* scales = reinterpret_cast<const BlockQ4_K*>(blk)->scales;
      const uint8_t* qs = kQ5 ? reinterpret_cast<const BlockQ5_K*>(blk)->qs : reinterpret_cast<const BlockQ4_K*>(blk)->qs;
      __m256i q[8];
      for (int c = 0; c < 4; ++c) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * c));
        q[2 * c] = _mm256_and_si256(v, m4);
        q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
      }
      if constexpr (kQ5) {
        const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(reinterpret_cast<const BlockQ5_K*>(blk)->qh));
        for (int s = 0; s < 8; ++s)
          q[s] = _mm256_mask_add_epi8(q[s], _mm256_test_epi8_mask(hb, _mm256_set1_epi8(char(1 << s))), q[s], v16);
      }
      const __m128i sm = k4_scales_mins(scales);
      const __m256i sc16 = _mm256_cvtepu8_epi16(sm);  // words 0..7: scales, 8..15: mins
      alignas(32) int16_t sc_words[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sc_words), sc16);
      __m256i sc[8];
      for (int s = 0; s < 8; ++s) sc[s] = _mm256_set1_epi16(sc_words[s]);
      const __m128i mins16 = _mm256_extracti128_si256(sc16, 1);
      const float dw = _cvtsh_ss(dh), dminw = _cvtsh_ss(dminh);
      for (int i = 0; i < NT; ++i) {
        const BlockQ8_K& xb = x[i][b];
        const float d = xb.d * dw, dmin = -xb.d * dminw;
        // Sx[s] = bsums[2s] + bsums[2s+1], as 8 words
        const __m256i sx32 = _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.bsums)), ones16);
        const __m128i mins_x = _mm_madd_epi16(mins16, _mm256_cvtepi32_epi16(sx32));  // min[2k]Sx[2k] + min[2k+1]Sx[2k+1]
        if constexpr (kQ5) {
          const __m128i m2 = _mm_add_epi32(mins_x, _mm_unpackhi_epi64(mins_x, mins_x));
          const int32_t mins = _mm_cvtsi128_si32(_mm_add_epi32(m2, _mm_shuffle_epi32(m2, 1)));
          summs[i] = std::fma(dmin, float(mins), summs[i]);
        } else {
          accm[i] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(mins_x), accm[i]);
        }
        __m256i lane[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
        for (int s = 0; s < 8; ++s) {
          const __m256i xq = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.qs + 32 * s));
          lane[s % 2] = _mm256_dpwssd_epi32(lane[s % 2], _mm256_maddubs_epi16(q[s], xq), sc[s]);
        }
        acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(lane[0], lane[1])), acc[i]);
      }
    }
    for (int i = 0; i < NT; ++i) {
      float tail;
      if constexpr (kQ5) {
        tail = summs[i];
      } else {
        const __m128 h = _mm_add_ps(accm[i], _mm_movehl_ps(accm[i], accm[i]));  // accm0 + accm2, accm1 + accm3
        tail = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
      }
      y[i * ldy + r] = hsum8_ps(acc[i]) + tail;
    }
  }
}

template <template <int> class Tile>
TileFn by_tokens(int nt) {
  switch (nt) {
    case 1: return Tile<1>::fn;
    case 2: return Tile<2>::fn;
    case 3: return Tile<3>::fn;
    case 4: return Tile<4>::fn;
    case 5: return Tile<5>::fn;
    case 6: return Tile<6>::fn;
    case 7: return Tile<7>::fn;
    default: return Tile<8>::fn;
  }
}
template <int NT>
struct Q4Kx8Tile {
  static constexpr TileFn fn = tile_q4kx8<NT>;
};
template <int NT>
struct Q6KTile {
  static constexpr TileFn fn = tile_q6k<NT>;
};
template <int NT>
struct Q4KRowsTile {
  static constexpr TileFn fn = tile_k4_rows<NT, false>;
};
template <int NT>
struct Q5KRowsTile {
  static constexpr TileFn fn = tile_k4_rows<NT, true>;
};

}  // namespace
PONDER_SIMD_END

TileFn simd_tile_k(const WeightView& w, int nt) {
  if (w.type == GgmlType::Q4_K && w.layout == WeightLayout::Q4Kx8) return by_tokens<Q4Kx8Tile>(nt);
  if (w.layout != WeightLayout::Rows) return nullptr;
  if (w.type == GgmlType::Q6_K) return by_tokens<Q6KTile>(nt);
  if (w.type == GgmlType::Q5_K) return by_tokens<Q5KRowsTile>(nt);
  if (w.type == GgmlType::Q4_K && w.order == DotOrder::Row) return by_tokens<Q4KRowsTile>(nt);  // else the 8-row orders
  return nullptr;
}

#else

TileFn simd_tile_k(const WeightView&, int) { return nullptr; }

#endif

}  // namespace ponder::matmul_detail
