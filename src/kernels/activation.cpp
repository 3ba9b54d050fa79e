#include "kernels/activation.h"

#include <algorithm>
#include <cmath>

#include "kernels/dot.h"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace ponder {

namespace {

#if defined(__AVX512F__)
// exp(x) for 16 floats, exp_ggml's algorithm (activation.h) in 16 lanes, the algorithm llama.cpp's CPU backend uses (so that softmax and SwiGLU
// agree with it bit for bit): n = round(x / ln2) by the 1.5 * 2^23 shift, b = x - n ln2 with ln2
// in two parts, exp(b) by a degree-5 polynomial evaluated in Estrin form, times 2^n (scalef).
// Maximum error ~1.5 ulp; |n| > 192 gives 0 (x < 0) or +inf.
inline __m512 exp16(__m512 x) {
  const __m512 shift = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), shift);
  const __m512 n = _mm512_sub_ps(z, shift);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                    _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 hi = _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)),
                                    u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f)));
  const __m512 p = _mm512_fmadd_ps(hi, u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
  const __m512 result = _mm512_scalef_ps(p, n);
  const __mmask16 out_of_range = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
  if (!out_of_range) return result;
  const __m512 limit = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ),
                                            _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
  return _mm512_mask_blend_ps(out_of_range, result, limit);
}
#elif defined(__AVX2__) && defined(__FMA__)
#define PONDER_EXP8 1
// 2^k for 8 integers k in [-126, 127].
inline __m256 pow2_8(__m256i k) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23)); }

// exp16's arithmetic in 8 lanes, the same bits: AVX2 has no scalef, so p * 2^n is taken as
// (p * 2^(n/2)) * 2^(n - n/2): the first product is exact (|n/2| <= 96 keeps it a normal float),
// the second rounds once, as scalef does (NaN stays NaN through both).
inline __m256 exp8(__m256 x) {
  const __m256 shift = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
  const __m256 n = _mm256_sub_ps(z, shift);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 hi = _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)),
                                    u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f)));
  const __m256 p = _mm256_fmadd_ps(hi, u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  const __m256 abs_n = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
  const __m256 out_of_range = _mm256_cmp_ps(abs_n, _mm256_set1_ps(192), _CMP_GT_OQ);
  const __m256i ni = _mm256_cvttps_epi32(_mm256_andnot_ps(out_of_range, n));  // n, or 0 where out of range
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256 result = _mm256_mul_ps(_mm256_mul_ps(p, pow2_8(n1)), pow2_8(_mm256_sub_epi32(ni, n1)));
  if (_mm256_testz_ps(out_of_range, out_of_range)) return result;
  const __m256 limit = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_set1_ps(INFINITY));
  return _mm256_blendv_ps(result, limit, out_of_range);
}
#endif

#if defined(__AVX512F__)
// The lanes of a 16-float group with `left` elements still to go.
inline __mmask16 tail_mask(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }
#endif

// The largest of x[0..n) (-inf when empty), in running maxima (32 lanes with AVX-512, 16
// otherwise): exact in any order, and one chain would wait out the latency of every max (151,936
// of them for a vocabulary row). A NaN is passed over (as std::max(m, x) does).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC 12 on the intrinsics' own _mm512_undefined_ps (its bug 105593)
#endif
float max_of(const float* x, int64_t n) {
#if defined(__AVX512F__)
  // Two vectors of running maxima, the tail masked. max_ps(v, m) keeps m where v is NaN.
  __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
    m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    m0 = _mm512_mask_max_ps(m0, k, _mm512_maskz_loadu_ps(k, x + i), m0);
  }
  __m512 m = _mm512_max_ps(m0, m1);  // then halves, quarters, pairs, neighbours
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, _MM_SHUFFLE(2, 3, 0, 1)));
  m = _mm512_max_ps(m, _mm512_permute_ps(m, _MM_SHUFFLE(1, 0, 3, 2)));
  m = _mm512_max_ps(m, _mm512_permute_ps(m, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_cvtss_f32(m);
#else
  constexpr int kLanes = 16;
  float m[kLanes];
  std::fill(m, m + kLanes, -INFINITY);
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) m[j] = std::max(m[j], x[i + j]);
  for (; i < n; ++i) m[0] = std::max(m[0], x[i]);
  float mx = -INFINITY;
  for (float v : m) mx = std::max(mx, v);
  return mx;
#endif
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace

float exp_ggml(float x) {
  const float shift = 0x1.8p23f;
  const float n = std::fma(x, 0x1.715476p+0f, shift) - shift;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float hi = std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f));
  const float p = std::fma(hi, u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::isnan(n)) return n;  // NaN in, NaN out (as scalef gives)
  if (std::fabs(n) > 192) return n <= 0 ? 0.0f : INFINITY;
  return std::ldexp(p, int(n));  // scalef: p * 2^n, rounded once (n is an integer here)
}

void swiglu_forward(float* out, const float* gate, const float* up, int64_t n) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= n; i += 16) {
    const __m512 g = _mm512_loadu_ps(gate + i);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
    _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), _mm512_loadu_ps(up + i)));
  }
#elif PONDER_EXP8
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i < n - n % 16; i += 8) {  // the 16-lane groups, 8 lanes at a time
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
  }
#else
  for (; i < n - n % 16; ++i) out[i] = gate[i] / (1.0f + exp_ggml(0.0f - gate[i])) * up[i];  // the lanes' arithmetic
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
#elif PONDER_EXP8
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i < n - n % 16; i += 8) {  // the 16-lane groups, 8 lanes at a time
    const __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dout + i);
    const __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_storeu_ps(dup + i, _mm256_mul_ps(_mm256_mul_ps(d, g), sg));
    const __m256 t = _mm256_fmadd_ps(g, _mm256_sub_ps(one, sg), one);
    _mm256_storeu_ps(dgate + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(up + i)), sg), t));
  }
#else
  for (; i < n - n % 16; ++i) {  // the lanes' arithmetic
    const float g = gate[i], d = dout[i];
    const float sg = 1.0f / (1.0f + exp_ggml(0.0f - g));
    dup[i] = (d * g) * sg;
    dgate[i] = ((d * up[i]) * sg) * std::fma(g, 1.0f - sg, 1.0f);
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
#else
#if PONDER_EXP8
  const __m256 m = _mm256_set1_ps(mx);
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m)));
#endif
  for (; i < n; ++i) x[i] = exp_ggml(x[i] - mx);
#endif
}

void softmax_forward(float* x, int64_t n) {
  const float mx = max_of(x, n);
  // llama.cpp's order: exp in groups of 16, each group summed in float by the halving tree
  // (lanes i + 8, i + 4, i + 2, i + 1), the group sums added in double in index order. A last
  // partial group reads as zeros, as llama.cpp's masked (padded) positions do.
  double sum = 0;
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 m = _mm512_set1_ps(mx);
  for (; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m)));
    _mm512_mask_storeu_ps(x + i, k, e);
    sum += double(_mm512_reduce_add_ps(e));
  }
#elif PONDER_EXP8
  const __m256 m = _mm256_set1_ps(mx);
  for (; i + 16 <= n; i += 16) {  // halving_sum16 of a group is hsum8(low half + high half)
    const __m256 lo = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
    const __m256 hi = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), m));
    _mm256_storeu_ps(x + i, lo);
    _mm256_storeu_ps(x + i + 8, hi);
    const __m256 v = _mm256_add_ps(lo, hi);
    const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 q = _mm_add_ps(h, _mm_movehl_ps(h, h));
    sum += double(_mm_cvtss_f32(_mm_add_ss(q, _mm_movehdup_ps(q))));
  }
  for (; i < n; i += 16) {
    float e[16] = {};
    for (int j = 0; j < 16 && i + j < n; ++j) x[i + j] = e[j] = exp_ggml(x[i + j] - mx);
    sum += double(halving_sum16(e));
  }
#else
  for (; i < n; i += 16) {
    float e[16] = {};
    for (int j = 0; j < 16 && i + j < n; ++j) x[i + j] = e[j] = exp_ggml(x[i + j] - mx);
    sum += double(halving_sum16(e));
  }
#endif
  const float inv = float(1.0 / sum);
#if defined(__AVX512F__)
  const __m512 vinv = _mm512_set1_ps(inv);
  for (i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    _mm512_mask_storeu_ps(x + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vinv));
  }
#else
  for (i = 0; i < n; ++i) x[i] *= inv;
#endif
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
#if defined(__AVX512F__)
  const __m512 vdot = _mm512_set1_ps(dotf);
  for (i = 0; i < n; i += 16) {
    const __mmask16 k = tail_mask(n - i);
    const __m512 dv = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, d + i), vdot);
    _mm512_mask_storeu_ps(d + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), dv));
  }
#else
  for (i = 0; i < n; ++i) d[i] = p[i] * (d[i] - dotf);
#endif
}

double log_sum_exp(const float* x, int64_t n) {
  const float mx = max_of(x, n);
  if (mx == -INFINITY) return -INFINITY;
  // exp(x - max) in blocks on the stack, summed in double: element i into lane i % 16, each lane
  // in index order, then the lanes pairwise (a fixed order, so the same bits every time; one
  // chain of 151,936 dependent adds took 0.16 ms a row, which a server step pays per stream).
  constexpr int kLanes = 16;
  constexpr int64_t kBlock = 256;  // a multiple of kLanes: lane of element i0 + k is k % kLanes
  float buf[kBlock];
  double lane[kLanes] = {};
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t len = std::min(kBlock, n - i0);
    std::copy(x + i0, x + i0 + len, buf);
    exp_shifted(buf, len, mx);
    int64_t k = 0;
    for (; k + kLanes <= len; k += kLanes)
      for (int j = 0; j < kLanes; ++j) lane[j] += double(buf[k + j]);
    for (; k < len; ++k) lane[k % kLanes] += double(buf[k]);
  }
  for (int width = kLanes / 2; width >= 1; width /= 2)
    for (int j = 0; j < width; ++j) lane[j] += lane[j + width];
  return double(mx) + std::log(lane[0]);
}

double log_softmax(float* out, const float* logits, int64_t n) {
  const float mx = max_of(logits, n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = double(mx) + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = float(double(logits[i]) - lse);
  return lse;
}

}  // namespace ponder
