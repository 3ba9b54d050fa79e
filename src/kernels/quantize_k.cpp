// The k-quant weight quantizers Q2_K, Q3_K, Q4_K, Q5_K, Q6_K: float rows to the blocks of
// kernels/quant_blocks.h, byte for byte as llama.cpp 0.5.0's llama-quantize writes them without an
// importance matrix.
//
// Formats (256 weights per super-block, fp16 d/dmin):
//   Q2_K: 16 sub-blocks of 16, 4-bit scale and 4-bit min each; w = d * scale * q - dmin * min, q 0..3.
//   Q3_K: 16 sub-blocks of 16, 6-bit scale (offset 32); w = d * (scale - 32) * (q - 4), q 0..7.
//   Q4_K: 8 sub-blocks of 32, 6-bit scale and min; w = d * scale * q - dmin * min, q 0..15.
//   Q5_K: Q4_K with q 0..31.
//   Q6_K: 16 sub-blocks of 16, int8 scale; w = d * scale * (q - 32), q 0..63.
//
// The llama.cpp facts followed (ggml/src/ggml-quants.c):
//   * With no imatrix, ggml_quantize_chunk's quantize_q2_K .. quantize_q6_K all call the
//     quantize_row_<type>_ref row functions (the *_impl variants and make_qkx3_quants /
//     make_qp_quants run only with an imatrix). Super-blocks are independent.
//   * Per sub-block searches: Q2_K make_qkx2_quants(16, nmax 3, weights |x|, rmin -0.5, rdelta 0.1,
//     15 steps, absolute error); Q4_K (32, 15, weights av_x + |x| with av_x = sqrt(sum x^2 / 32),
//     -1, 0.1, 20 steps, squared error); Q5_K (32, 31, the same weights, -0.5, 0.1, 15 steps,
//     squared error); Q3_K make_q3_quants(16, nmax 4, rmse); Q6_K make_qx_quants(16, nmax 32,
//     rmse_type 1, weights x^2).
//   * The sub-block scales (and mins) are then quantized against the largest one (Q2_K 15 levels,
//     Q4_K/Q5_K 63, Q3_K -32/max with the sign of the largest |scale|, Q6_K -128/max), d and dmin
//     stored as fp16, and every weight re-quantized with the stored (fp16-rounded) scales; a
//     sub-block whose stored scale is zero keeps the quants of its search.
//   * nearest_int is the 12582912 float trick (round half to even, no range check in release).
//   * ggml-quants.c lives in libggml-base, compiled -O3 with no -march flag (x86-64 baseline: SSE2,
//     no FMA): every float product and sum is rounded on its own, in source order. GCC contracts
//     a * b + c into an fma in C++ when the target has FMA (-march=native here), so this file turns
//     contraction off (the pragma below); its object holds no vfmadd instruction.
//   * fp16 conversions round to nearest even (ggml's software path, as core/fp16.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize.h"

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace ponder::quantize {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // llama.cpp's GROUP_MAX_EPS: below it a group is all zero

// Round to the nearest integer, ties to even, by adding 1.5 * 2^23 (valid for |v| <= 2^22 - 1).
int nearest_int(float v) {
  const float biased = v + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, sizeof bits);
  return (bits & 0x007fffff) - 0x00400000;
}

void check_row(int64_t K, const char* type) {
  if (K < 0 || K % kQK_K != 0)
    throw InvalidArgument(std::string("quantize ") + type + ": row length " + std::to_string(K) +
                          " is not a multiple of " + std::to_string(kQK_K));
}

// The step search of make_qkx2_quants: iscale = (rmin + rdelta * is + nmax) / (max - min) for
// is = 0 .. n_step.
struct QkxSearch {
  float rmin = 0, rdelta = 0;
  int n_step = 0;
  bool use_mad = false;  // error |diff| instead of diff^2
};

float weighted_error(int n, const float* x, const float* weights, const uint8_t* L, float scale, float min,
                     bool use_mad) {
  float error = 0;
  for (int i = 0; i < n; ++i) {
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    error += weights[i] * diff;
  }
  return error;
}

// x (n) -> L (n, 0..nmax) with x ~ scale * L - the_min (make_qkx2_quants): an affine fit from
// [min(x, 0), max(x)], then the weighted least-squares scale and min of each step's rounding,
// keeping the one of least weighted error. Returns the scale; the_min >= 0.
float fit_scale_min(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                    const QkxSearch& search) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    sum_w += weights[i];
    sum_x += weights[i] * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t(0));
    *the_min = -min;
    return 0.f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax));
  float best_error = weighted_error(n, x, weights, L, scale, min, search.use_mad);

  uint8_t Laux[32];
  for (int is = 0; is <= search.n_step; ++is) {
    iscale = (search.rmin + search.rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = uint8_t(l);
      const float wl = weights[i] * float(l);
      sum_l += wl;
      sum_l2 += wl * float(l);
      sum_xl += wl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (!(D > 0)) continue;
    float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
    float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
    if (this_min > 0) {
      this_min = 0;
      this_scale = sum_xl / sum_l2;
    }
    const float error = weighted_error(n, x, weights, Laux, this_scale, this_min, search.use_mad);
    if (error < best_error) {
      std::copy(Laux, Laux + n, L);
      best_error = error;
      scale = this_scale;
      min = this_min;
    }
  }
  *the_min = -min;
  return scale;
}

// The value of largest magnitude (the first one on a tie), or 0 when all are below kGroupMaxEps.
float signed_max(int n, const float* x, float* amax_out) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  *amax_out = amax;
  return max;
}

// x (n) -> L (n, 0..2 nmax - 1) with x ~ scale * (L - nmax), symmetric with weights x^2
// (make_qx_quants, rmse_type 1, no imatrix): the rounding at -nmax / max, then 18 nearby scales
// -(nmax + 0.1 is) / max, keeping the best least-squares fit. Returns the scale.
float fit_scale_qx(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_max(n, x, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  // The least-squares sums of the rounding at iscale; writes the quants when L is not null.
  auto round_at = [&](float iscale, float* sumlx, float* suml2, int8_t* out) {
    *sumlx = 0;
    *suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
      if (out) out[i] = int8_t(l + nmax);
      const float w = x[i] * x[i];
      *sumlx += w * x[i] * float(l);
      *suml2 += w * float(l) * float(l);
    }
  };
  float sumlx, suml2;
  round_at(float(-nmax) / max, &sumlx, &suml2, L);
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    const float iscale = -(float(nmax) + 0.1f * float(is)) / max;
    round_at(iscale, &sumlx, &suml2, nullptr);
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      round_at(iscale, &sumlx, &suml2, L);
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// x (16) -> L (16, 0..7) with x ~ scale * (L - 4) (make_q3_quants with rmse, nmax 4): the rounding
// at -4 / max, then up to 5 passes that move one quant at a time to its best value for the
// weighted (x^2) least-squares fit, kept when the fit improves. Returns the scale.
float fit_scale_q3(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_max(n, x, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (!(slx > 0)) continue;
      float sl2 = suml2 - w * float(L[i]) * float(L[i]);
      const int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
      if (new_l == L[i]) continue;
      slx += w * x[i] * float(new_l);
      sl2 += w * float(new_l) * float(new_l);
      if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
        L[i] = int8_t(new_l);
        sumlx = slx;
        suml2 = sl2;
        ++n_changed;
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Re-quantizes n weights of a min-scale sub-block with its stored scale d and min dm:
// L = clamp(round((x + dm) / d), 0, nmax). Nothing when d is zero (the search's quants stay).
void requantize_affine(int n, int nmax, const float* x, float d, float dm, uint8_t* L) {
  if (d == 0) return;
  for (int i = 0; i < n; ++i) L[i] = uint8_t(std::clamp(nearest_int((x[i] + dm) / d), 0, nmax));
}

// 256 values 0..3 -> 64 bytes: byte 32c + l holds elements 128c + l + 32k in bits 2k, 2k+1.
void pack_2bit(const uint8_t L[kQK_K], uint8_t qs[kQK_K / 4]) {
  for (int c = 0; c < 2; ++c)
    for (int l = 0; l < 32; ++l) {
      const uint8_t* q = L + 128 * c + l;
      qs[32 * c + l] = uint8_t(q[0] | q[32] << 2 | q[64] << 4 | q[96] << 6);
    }
}

// The 6-bit scales and mins of 8 sub-blocks into Q4_K/Q5_K's 12 bytes (the inverse of
// get_scale_min_k4): sub-blocks 0..3 in the low 6 bits of bytes 0..3 (scales) and 4..7 (mins);
// sub-blocks 4..7 with their low 4 bits in bytes 8..11 (scale low nibble, min high nibble) and
// their top 2 bits in the top 2 bits of bytes 0..3 (scales) and 4..7 (mins).
void pack_scales_k4(const uint8_t ls[8], const uint8_t lm[8], uint8_t scales[12]) {
  for (int j = 0; j < 4; ++j) {
    scales[j] = uint8_t(ls[j] | (ls[j + 4] >> 4) << 6);
    scales[j + 4] = uint8_t(lm[j] | (lm[j + 4] >> 4) << 6);
    scales[j + 8] = uint8_t((ls[j + 4] & 0xF) | (lm[j + 4] & 0xF) << 4);
  }
}

// The scale and min search of one Q4_K/Q5_K super-block, then the 6-bit scales and mins relative
// to the largest of each (quantize_row_q4_K_ref / q5_K_ref up to the final quants).
// x (256) -> L (256, 0..nmax), scales (12), d, dmin.
void quantize_super_block_k4(const float* x, int nmax, const QkxSearch& search, uint8_t L[kQK_K],
                             uint8_t scales_out[12], uint16_t* d_out, uint16_t* dmin_out) {
  constexpr int kSub = 32;
  float scales[8], mins[8], weights[kSub];
  float max_scale = 0, max_min = 0;  // scales and mins are never negative
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + kSub * j;
    float sum_x2 = 0;
    for (int l = 0; l < kSub; ++l) sum_x2 += xs[l] * xs[l];
    const float av_x = std::sqrt(sum_x2 / kSub);
    for (int l = 0; l < kSub; ++l) weights[l] = av_x + std::fabs(xs[l]);
    scales[j] = fit_scale_min(kSub, nmax, xs, weights, L + kSub * j, &mins[j], search);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
  }
  pack_scales_k4(ls, lm, scales_out);
  *d_out = fp32_to_fp16(max_scale / 63.f);
  *dmin_out = fp32_to_fp16(max_min / 63.f);
  const float d = fp16_to_fp32(*d_out), dmin = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j)
    requantize_affine(kSub, nmax, x + kSub * j, d * float(ls[j]), dmin * float(lm[j]), L + kSub * j);
}

// 256 values 0..15 (the low nibbles for Q5_K) -> 128 bytes: 64-element chunk c is the low nibbles
// of qs[32c ..] (its first 32) and their high nibbles (its last 32).
void pack_nibbles_k(const uint8_t L[kQK_K], uint8_t qs[kQK_K / 2]) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l)
      qs[32 * c + l] = uint8_t((L[64 * c + l] & 0xF) | (L[64 * c + 32 + l] & 0xF) << 4);
}

void quantize_block_q2_k(const float* x, BlockQ2_K& y) {
  constexpr int kSub = 16;
  const QkxSearch search{.rmin = -0.5f, .rdelta = 0.1f, .n_step = 15, .use_mad = true};
  uint8_t L[kQK_K];
  float scales[16], mins[16], weights[kSub];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 16; ++j) {
    const float* xs = x + kSub * j;
    for (int l = 0; l < kSub; ++l) weights[l] = std::fabs(xs[l]);
    scales[j] = fit_scale_min(kSub, 3, xs, weights, L + kSub * j, &mins[j], search);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  // Scales in the low nibbles, mins in the high (C's int -> uint8_t conversions kept).
  std::fill(y.scales, y.scales + 16, uint8_t(0));
  y.d = fp32_to_fp16(0.f);
  y.dmin = fp32_to_fp16(0.f);
  if (max_scale > 0) {
    const float iscale = 15.f / max_scale;
    for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
    y.d = fp32_to_fp16(max_scale / 15.f);
  }
  if (max_min > 0) {
    const float iscale = 15.f / max_min;
    for (int j = 0; j < 16; ++j) y.scales[j] = uint8_t(y.scales[j] | nearest_int(iscale * mins[j]) << 4);
    y.dmin = fp32_to_fp16(max_min / 15.f);
  }
  const float d = fp16_to_fp32(y.d), dmin = fp16_to_fp32(y.dmin);
  for (int j = 0; j < 16; ++j) {
    const float dj = d * float(y.scales[j] & 0xF), mj = dmin * float(y.scales[j] >> 4);
    requantize_affine(kSub, 3, x + kSub * j, dj, mj, L + kSub * j);
  }
  pack_2bit(L, y.qs);
}

void quantize_block_q3_k(const float* x, BlockQ3_K& y) {
  constexpr int kSub = 16;
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, amax = 0;  // the scale of largest magnitude, with its sign
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_scale_q3(kSub, 4, x + kSub * j, L + kSub * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  // 6-bit scales + 32: the low nibbles of sub-blocks 0..7 then 8..15 in bytes 0..7 (low, high
  // nibble), the top 2 bits of sub-block j in bits 2 (j / 4) of byte 8 + j % 4.
  int sc[16] = {};  // the stored scales, 0..63
  std::fill(y.scales, y.scales + 12, uint8_t(0));
  y.d = fp32_to_fp16(0.f);
  if (max_scale != 0) {
    const float iscale = -32.f / max_scale;
    for (int j = 0; j < 16; ++j) {
      const int8_t l = int8_t(nearest_int(iscale * scales[j]));
      sc[j] = std::clamp<int>(l, -32, 31) + 32;
      if (j < 8) y.scales[j] = uint8_t(sc[j] & 0xF);
      else y.scales[j - 8] = uint8_t(y.scales[j - 8] | (sc[j] & 0xF) << 4);
      y.scales[8 + j % 4] = uint8_t(y.scales[8 + j % 4] | (sc[j] >> 4) << (2 * (j / 4)));
    }
    y.d = fp32_to_fp16(1 / iscale);
  }
  const float d_all = fp16_to_fp32(y.d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * float(sc[j] - 32);
    if (d == 0) continue;
    for (int i = 0; i < kSub; ++i)
      L[kSub * j + i] = int8_t(std::clamp(nearest_int(x[kSub * j + i] / d), -4, 3) + 4);
  }
  // The high bit of element e in bit e / 32 of hmask[e % 32]; the low 2 bits as Q2_K's.
  uint8_t low[kQK_K];
  std::fill(y.hmask, y.hmask + kQK_K / 8, uint8_t(0));
  for (int e = 0; e < kQK_K; ++e) {
    if (L[e] > 3) y.hmask[e % 32] = uint8_t(y.hmask[e % 32] | 1 << (e / 32));
    low[e] = uint8_t(L[e] & 3);
  }
  pack_2bit(low, y.qs);
}

void quantize_block_q4_k(const float* x, BlockQ4_K& y) {
  uint8_t L[kQK_K];
  quantize_super_block_k4(x, 15, {.rmin = -1.f, .rdelta = 0.1f, .n_step = 20}, L, y.scales, &y.d, &y.dmin);
  pack_nibbles_k(L, y.qs);
}

void quantize_block_q5_k(const float* x, BlockQ5_K& y) {
  uint8_t L[kQK_K];
  quantize_super_block_k4(x, 31, {.rmin = -0.5f, .rdelta = 0.1f, .n_step = 15}, L, y.scales, &y.d, &y.dmin);
  pack_nibbles_k(L, y.qs);
  // Bit 4 of element 32s + l in bit s of qh[l].
  std::fill(y.qh, y.qh + kQK_K / 8, uint8_t(0));
  for (int e = 0; e < kQK_K; ++e)
    if (L[e] > 15) y.qh[e % 32] = uint8_t(y.qh[e % 32] | 1 << (e / 32));
}

void quantize_block_q6_k(const float* x, BlockQ6_K& y) {
  constexpr int kSub = 16;
  int8_t L[kQK_K];
  float scales[16];
  float max_scale = 0, max_abs_scale = 0;
  for (int j = 0; j < 16; ++j) {
    scales[j] = fit_scale_qx(kSub, 32, x + kSub * j, L + kSub * j);
    if (std::fabs(scales[j]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(&y, 0, sizeof y);
    y.d = fp32_to_fp16(0.f);
    return;
  }
  const float iscale = -128.f / max_scale;
  y.d = fp32_to_fp16(1 / iscale);
  for (int j = 0; j < 16; ++j) y.scales[j] = int8_t(std::min(127, nearest_int(iscale * scales[j])));
  const float d_all = fp16_to_fp32(y.d);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * float(y.scales[j]);
    if (d == 0) continue;
    for (int i = 0; i < kSub; ++i)
      L[kSub * j + i] = int8_t(std::clamp(nearest_int(x[kSub * j + i] / d), -32, 31) + 32);
  }
  // Per 128 elements c: ql[64c + l] holds elements 128c + l (low nibble) and + 64 (high nibble),
  // ql[64c + 32 + l] elements + 32 and + 96; qh[32c + l] the top 2 bits of + 0, 32, 64, 96.
  for (int c = 0; c < 2; ++c)
    for (int l = 0; l < 32; ++l) {
      const int8_t* q = L + 128 * c + l;
      y.ql[64 * c + l] = uint8_t((q[0] & 0xF) | (q[64] & 0xF) << 4);
      y.ql[64 * c + 32 + l] = uint8_t((q[32] & 0xF) | (q[96] & 0xF) << 4);
      y.qh[32 * c + l] = uint8_t(q[0] >> 4 | (q[32] >> 4) << 2 | (q[64] >> 4) << 4 | (q[96] >> 4) << 6);
    }
}

// x (K) -> K / 256 blocks at out, one super-block at a time.
template <class Block>
void quantize_blocks(uint8_t* out, const float* x, int64_t K, const char* type,
                     void (*block)(const float*, Block&)) {
  check_row(K, type);
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    Block y;
    block(x + b * kQK_K, y);
    std::memcpy(out + b * int64_t(sizeof(Block)), &y, sizeof(Block));
  }
}

}  // namespace

void row_q2_k(uint8_t* out, const float* x, int64_t K) {
  quantize_blocks<BlockQ2_K>(out, x, K, "Q2_K", quantize_block_q2_k);
}
void row_q3_k(uint8_t* out, const float* x, int64_t K) {
  quantize_blocks<BlockQ3_K>(out, x, K, "Q3_K", quantize_block_q3_k);
}
void row_q4_k(uint8_t* out, const float* x, int64_t K) {
  quantize_blocks<BlockQ4_K>(out, x, K, "Q4_K", quantize_block_q4_k);
}
void row_q5_k(uint8_t* out, const float* x, int64_t K) {
  quantize_blocks<BlockQ5_K>(out, x, K, "Q5_K", quantize_block_q5_k);
}
void row_q6_k(uint8_t* out, const float* x, int64_t K) {
  quantize_blocks<BlockQ6_K>(out, x, K, "Q6_K", quantize_block_q6_k);
}

}  // namespace ponder::quantize
