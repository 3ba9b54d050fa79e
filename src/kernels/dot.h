#pragma once
// dot(a, b) of n floats with the lane arithmetic of an F32 matmul: 8 lanes (element k in lane
// k % 8, fma), then the fixed horizontal sum ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). Inline,
// for the attention inner loops.
#include <cmath>
#include <cstdint>

#if defined(__AVX512VL__) && defined(__FMA__)
#include <immintrin.h>
#endif

namespace ponder {

inline float dot_f32(const float* a, const float* b, int64_t n) {
#if defined(__AVX512VL__) && defined(__FMA__)
  __m256 acc = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
  if (k < n) {
    const __mmask8 m = __mmask8((1u << (n - k)) - 1);
    acc = _mm256_fmadd_ps(_mm256_maskz_loadu_ps(m, a + k), _mm256_maskz_loadu_ps(m, b + k), acc);
  }
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
#else
  float l[8] = {};
  for (int64_t k0 = 0; k0 < n; k0 += 8)
    for (int j = 0; j < 8; ++j) l[j] = k0 + j < n ? std::fma(a[k0 + j], b[k0 + j], l[j]) : std::fma(0.f, 0.f, l[j]);
  const float p = l[0] + l[4], q = l[1] + l[5], r = l[2] + l[6], s = l[3] + l[7];
  return (p + r) + (q + s);
#endif
}

}  // namespace ponder
