// The activation quantizers of kernels/quant.h (Q8_0, Q8_1, Q8_K) with AVX-512, bitwise equal to
// quantize_activation_row: the same scale from the same exact maximum, the same float products
// rounded half to even, the same integer sums; the scalar steps (the scale, its fp16 rounding) are
// the portable code's own expressions.
#include "kernels/matmul_internal.h"

#include <cstring>

#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder::matmul_detail {

#if PONDER_SIMD

PONDER_SIMD_BEGIN

namespace {

constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// q = round-half-even(x * id) for 32 floats as 32 int8 (|q| <= 127 here), and the 8 sums of each
// 4 consecutive quants.
inline __m256i quantize32(const float* x, float id, __m256i& sums4) {
  const __m512 s = _mm512_set1_ps(id);
  const __m512i q0 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), s), kRound);
  const __m512i q1 = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16), s), kRound);
  const __m256i q = _mm256_set_m128i(_mm512_cvtepi32_epi8(q1), _mm512_cvtepi32_epi8(q0));
  sums4 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), q);
  return q;
}

// quantize_block_q8: max|x| of 32 floats, exact.
inline float amax32(const float* x) {
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(x)), _mm512_abs_ps(_mm512_loadu_ps(x + 16))));
}

inline int32_t hsum_epi32(__m256i v) {
  const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  const __m128i u = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  return _mm_cvtsi128_si32(_mm_add_epi32(u, _mm_shuffle_epi32(u, 1)));
}

void quantize_q8_0(ActBlockQ8* out, const float* x, int64_t K) {
  for (int64_t b = 0; b < K / kQ8Block; ++b) {
    const float* xb = x + b * kQ8Block;
    const float amax = amax32(xb);
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    ActBlockQ8& a = out[b];
    __m256i sums4;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.qs), quantize32(xb, id, sums4));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(a.corr), _mm256_slli_epi32(_mm256_sub_epi32(_mm256_setzero_si256(), sums4), 7));
    a.sum = hsum_epi32(sums4);
    a.d = fp16_to_fp32(fp32_to_fp16(amax / 127.f));
  }
}

void quantize_q8_1(ActBlockQ8_1* out, const float* x, int64_t K) {
  for (int64_t b = 0; b < K / kQK; ++b) {
    const float* xb = x + b * kQK;
    const float amax = amax32(xb);
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    const float d = amax / 127.f;
    __m256i sums4;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[b].qs), quantize32(xb, id, sums4));
    out[b].d = fp16_to_fp32(fp32_to_fp16(d));
    out[b].s = fp16_to_fp32(fp32_to_fp16(d * float(hsum_epi32(sums4))));
  }
}

// quantize_row_q8_K: the scale from the first value of largest magnitude.
void quantize_q8_k(BlockQ8_K* out, const float* x, int64_t K) {
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    const float* xb = x + b * kQK_K;
    BlockQ8_K& y = out[b];
    __m512 m = _mm512_setzero_ps();
    for (int k = 0; k < 16; ++k) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb + 16 * k)));
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0) {
      std::memset(&y, 0, sizeof y);
      continue;
    }
    const __m512 am = _mm512_set1_ps(amax);
    int first = 0;
    for (int k = 0; k < 16; ++k) {
      const __mmask16 eq = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(xb + 16 * k)), am, _CMP_EQ_OQ);
      if (eq) {
        first = 16 * k + __builtin_ctz(eq);
        break;
      }
    }
    const float iscale = -127.f / xb[first];
    const __m512 s = _mm512_set1_ps(iscale);
    const __m512i max_q = _mm512_set1_epi32(127);
    alignas(64) int32_t sums[16];
    for (int k = 0; k < 16; ++k) {
      const __m512i q =
          _mm512_min_epi32(_mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + 16 * k), s), kRound), max_q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y.qs + 16 * k), _mm512_cvtepi32_epi8(q));
      sums[k] = _mm512_reduce_add_epi32(q);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y.bsums), _mm512_cvtepi32_epi16(_mm512_load_si512(sums)));
    y.d = 1 / iscale;
  }
}

}  // namespace
PONDER_SIMD_END

bool simd_quantize_activation_row(uint8_t* out, const float* x, int64_t K, GgmlType partner) {
  if (!have_simd()) return false;
  switch (partner) {
    case GgmlType::Q8_0: quantize_q8_0(reinterpret_cast<ActBlockQ8*>(out), x, K); return true;
    case GgmlType::Q8_1: quantize_q8_1(reinterpret_cast<ActBlockQ8_1*>(out), x, K); return true;
    case GgmlType::Q8_K: quantize_q8_k(reinterpret_cast<BlockQ8_K*>(out), x, K); return true;
    default: return false;
  }
}

#else

bool simd_quantize_activation_row(uint8_t*, const float*, int64_t, GgmlType) { return false; }

#endif

}  // namespace ponder::matmul_detail
