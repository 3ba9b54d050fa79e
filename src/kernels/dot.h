#pragma once
// dot(a, b) of n floats in the order of llama.cpp's one-row F32 dot product on AVX-512
// (ggml_vec_dot_f32), which it uses for the attention scores q . k: the first n - n % 64
// elements in 64 lanes (element k in lane k % 64, one fma per element), the lanes reduced as
// s[l] = (a[l] + a[l+32]) + (a[l+16] + a[l+48]) for l < 16, then s by the halving tree
// (i + 8, i + 4, i + 2, i + 1); the last n % 64 elements added one by one with fma. Inline, for
// the attention inner loops. The portable path does the same arithmetic, so both are bitwise equal.
#include <cmath>
#include <cstdint>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace ponder {

// The halving tree of 16 floats, the order of _mm512_reduce_add_ps.
inline float halving_sum16(const float v[16]) {
  float t[8];
  for (int i = 0; i < 8; ++i) t[i] = v[i] + v[i + 8];
  for (int i = 0; i < 4; ++i) t[i] = t[i] + t[i + 4];
  for (int i = 0; i < 2; ++i) t[i] = t[i] + t[i + 2];
  return t[0] + t[1];
}

// The 64-lane reduction of ggml's F32/F16 dot products: lane l of acc holds element k % 64 == l.
inline float reduce_lanes64(const float acc[64]) {
  float s[16];
  for (int l = 0; l < 16; ++l) s[l] = (acc[l] + acc[l + 32]) + (acc[l + 16] + acc[l + 48]);
  return halving_sum16(s);
}

inline float dot_f32(const float* a, const float* b, int64_t n) {
  const int64_t np = n & ~int64_t(63);
  float sum = 0;
#if defined(__AVX512F__)
  if (np > 0) {
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int64_t k = 0; k < np; k += 64)
      for (int j = 0; j < 4; ++j)
        acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 16 * j), _mm512_loadu_ps(b + k + 16 * j), acc[j]);
    sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3])));
  }
#elif defined(__AVX2__) && defined(__FMA__)
  if (np > 0) {  // the 64 lanes as 8 units of 8 (unit u: lanes 8u..8u+7)
    __m256 acc[8];
    for (int u = 0; u < 8; ++u) acc[u] = _mm256_setzero_ps();
    for (int64_t k = 0; k < np; k += 64)
      for (int u = 0; u < 8; ++u) acc[u] = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8 * u), _mm256_loadu_ps(b + k + 8 * u), acc[u]);
    // s (16 lanes) = units (0+4)+(2+6) | (1+5)+(3+7); halving_sum16(s) = the halving sum of s_lo + s_hi.
    const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
                                   _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])));
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    sum = _mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q)));
  }
#else
  if (np > 0) {
    float acc[64] = {};
    for (int64_t k = 0; k < np; k += 64)
      for (int l = 0; l < 64; ++l) acc[l] = std::fma(a[k + l], b[k + l], acc[l]);
    sum = reduce_lanes64(acc);
  }
#endif
  for (int64_t k = np; k < n; ++k) sum = std::fma(a[k], b[k], sum);
  return sum;
}

// out[r] = dot_f32(a, rows + r * stride, n) for the 16 rows r < 16, bitwise. On AVX-512 the 16
// rows' lane vectors are reduced together: each step of the halving tree (lanes i + 8, i + 4,
// i + 2, i + 1) adds the halves of two rows' vectors at once after a shuffle that pairs them, so
// every sum is the same addition of the same two values as in dot_f32; 16 scores of 64 elements
// take 0.6-0.75 of the time of 16 dot_f32 calls, whose horizontal reductions dominate.
inline void dot_f32_rows16(const float* a, const float* rows, int64_t stride, int64_t n, float out[16]) {
#if defined(__AVX512F__)
  const int64_t np = n & ~int64_t(63);
  if (np > 0) {
    // Slot s holds row 4 * (s % 4) + s / 4: the tree below leaves slot c + 4i in lane 4c + i.
    __m512 u[16];
    for (int s = 0; s < 16; ++s) {
      const float* b = rows + int64_t(4 * (s % 4) + s / 4) * stride;
      __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int64_t k = 0; k < np; k += 64)
        for (int j = 0; j < 4; ++j)
          acc[j] = _mm512_fmadd_ps(_mm512_loadu_ps(a + k + 16 * j), _mm512_loadu_ps(b + k + 16 * j), acc[j]);
      u[s] = _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3]));
    }
    __m512 h8[8], h4[4], h2[2];
    for (int m = 0; m < 8; ++m)  // lanes i + 8: [slot 2m's 8 sums, slot 2m+1's]
      h8[m] = _mm512_add_ps(_mm512_shuffle_f32x4(u[2 * m], u[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_f32x4(u[2 * m], u[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int m = 0; m < 4; ++m)  // lanes i + 4: 128-bit chunk c holds slot 4m + c's 4 sums
      h4[m] = _mm512_add_ps(_mm512_shuffle_f32x4(h8[2 * m], h8[2 * m + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_f32x4(h8[2 * m], h8[2 * m + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int m = 0; m < 2; ++m)  // lanes i + 2: chunk c holds slots 8m + c (2 sums), 8m + 4 + c (2)
      h2[m] = _mm512_add_ps(_mm512_shuffle_ps(h4[2 * m], h4[2 * m + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_ps(h4[2 * m], h4[2 * m + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    // lanes i + 1: lane 4c + i holds slot c + 4i, that is row 4c + i.
    _mm512_storeu_ps(out, _mm512_add_ps(_mm512_shuffle_ps(h2[0], h2[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                        _mm512_shuffle_ps(h2[0], h2[1], _MM_SHUFFLE(3, 1, 3, 1))));
    for (int r = 0; r < 16; ++r)
      for (int64_t k = np; k < n; ++k) out[r] = std::fma(a[k], rows[r * stride + k], out[r]);
    return;
  }
#endif
  for (int r = 0; r < 16; ++r) out[r] = dot_f32(a, rows + r * stride, n);
}

}  // namespace ponder
