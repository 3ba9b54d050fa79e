#include "kernels/activation.h"

#include <algorithm>
#include <cmath>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ponder {

namespace {

#if defined(__AVX512F__)
// exp(x) for 16 floats: x = n ln2 + r with |r| <= ln2/2, exp(r) by a degree-6 polynomial
// (Cephes expf coefficients), times 2^n. Relative error ~2e-7; inputs below -87.3 give 0.
inline __m512 exp16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-87.33654f), hi = _mm512_set1_ps(88.72283f);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, lo), hi);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_scalef_ps(~under, p, n);
}
#endif

}  // namespace

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
  }
#endif
  for (; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i), d = _mm512_loadu_ps(dout + i);
    const __m512 sg = _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_storeu_ps(dup + i, _mm512_mul_ps(_mm512_mul_ps(d, g), sg));
    const __m512 t = _mm512_fmadd_ps(g, _mm512_sub_ps(one, sg), one);
    _mm512_storeu_ps(dgate + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, _mm512_loadu_ps(up + i)), sg), t));
  }
#endif
  for (; i < n; ++i) {
    const float g = gate[i];
    const float s = 1.0f / (1.0f + std::exp(-g));
    dup[i] = dout[i] * g * s;
    dgate[i] = dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

void exp_shifted(float* x, int64_t n, float mx) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 m = _mm512_set1_ps(mx);
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), m)));
  if (i < n) {
    const __mmask16 k = __mmask16((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(x + i, k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m)));
    i = n;
  }
#endif
  for (; i < n; ++i) x[i] = std::exp(x[i] - mx);
}

void softmax_forward(float* x, int64_t n) {
  float mx = -INFINITY;
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512 m16 = _mm512_set1_ps(-INFINITY);
  for (; i + 16 <= n; i += 16) m16 = _mm512_max_ps(m16, _mm512_loadu_ps(x + i));
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, m16);
  for (float v : lanes) mx = std::max(mx, v);
#endif
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  exp_shifted(x, n, mx);
  // The sum in double: 16 lanes (two 8-lane halves), then the lanes and the tail in a fixed order.
  double sum = 0;
  i = 0;
#if defined(__AVX512F__)
  __m512d s_lo = _mm512_setzero_pd(), s_hi = _mm512_setzero_pd();
  for (; i + 16 <= n; i += 16) {
    s_lo = _mm512_add_pd(s_lo, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
    s_hi = _mm512_add_pd(s_hi, _mm512_cvtps_pd(_mm256_loadu_ps(x + i + 8)));
  }
  alignas(64) double dl[8];
  _mm512_store_pd(dl, _mm512_add_pd(s_lo, s_hi));
  for (double v : dl) sum += v;
#endif
  for (; i < n; ++i) sum += x[i];
  const float inv = float(1.0 / sum);
  for (i = 0; i < n; ++i) x[i] *= inv;
}

void softmax_backward(float* d, const float* p, int64_t n) {
  double dot = 0;
  int64_t i = 0;
#if defined(__AVX512F__)
  __m512d s_lo = _mm512_setzero_pd(), s_hi = _mm512_setzero_pd();
  for (; i + 16 <= n; i += 16) {
    s_lo = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(d + i)), _mm512_cvtps_pd(_mm256_loadu_ps(p + i)), s_lo);
    s_hi = _mm512_fmadd_pd(_mm512_cvtps_pd(_mm256_loadu_ps(d + i + 8)), _mm512_cvtps_pd(_mm256_loadu_ps(p + i + 8)), s_hi);
  }
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, _mm512_add_pd(s_lo, s_hi));
  for (double v : lanes) dot += v;
#endif
  for (; i < n; ++i) dot += double(d[i]) * p[i];
  const float dotf = float(dot);
  for (i = 0; i < n; ++i) d[i] = p[i] * (d[i] - dotf);
}

double log_sum_exp(const float* x, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
  if (mx == -INFINITY) return -INFINITY;
  // exp(x - max) in blocks on the stack, summed in double in index order.
  constexpr int64_t kBlock = 256;
  float buf[kBlock];
  double sum = 0;
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t m = std::min(kBlock, n - i0);
    std::copy(x + i0, x + i0 + m, buf);
    exp_shifted(buf, m, mx);
    for (int64_t i = 0; i < m; ++i) sum += buf[i];
  }
  return double(mx) + std::log(sum);
}

double log_softmax(float* out, const float* logits, int64_t n) {
  float mx = -INFINITY;
  for (int64_t i = 0; i < n; ++i) mx = std::max(mx, logits[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = double(mx) + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = float(double(logits[i]) - lse);
  return lse;
}

}  // namespace ponder
