// The k-quants Q4_K, Q5_K and Q6_K against their partner Q8_K, in llama.cpp's arithmetic (see
// kernels/quant.h).
//
// What llama.cpp 0.5.0 does on x86 with AVX2/AVX-512 (arch/x86/quants.c and repack.cpp; the one-row
// k-quant dot products have no AVX-512 branch, their __AVX2__ branches run):
//   * Every integer part is exact (maddubs never saturates: weights 0..63, activations -128..127).
//     In the one-row kernels, int32 lane m (m = 0..7) of a super-block holds, over all its runs of
//     32 elements, the run's scale times the products of the run's elements 4m..4m+3 (Q6_K: lanes
//     0..3 take the scale of the run's first 16 elements, lanes 4..7 that of its last 16).
//   * Q4_K: acc[m] = fma(d, float(lane m), acc[m]) with d = dx * dw; the mins in 4 lanes,
//     accm[k] = fma(dmin, float(min[2k] * S[2k] + min[2k+1] * S[2k+1]), accm[k]) with
//     dmin = -dx * dminw and S[s] the sum of sub-block s's activation quants;
//     result hsum8(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3])).
//   * Q5_K: Q4_K's lanes over the 5-bit values; the mins summed exactly per super-block (M), then
//     summs = fma(dmin, float(M), summs) (gcc contracts `summs += dmin * M`); hsum8(acc) + summs.
//   * Q6_K: lane m minus 32 * (scale[2m] * bsum[2m] + scale[2m+1] * bsum[2m+1]) (the -32 offset via
//     the 16-element activation sums), acc[m] = fma(d, float(lane m), acc[m]); hsum8(acc).
//   * Q4_K matrices with a multiple of 8 rows are repacked 8 rows at a time (Q5_K and Q6_K only on
//     ARM). One float accumulator per row for the scaled sums and one for the mins:
//       gemv (ggml_gemv_q4_K_8x8_q8_K, one activation row): per super-block the exact sums
//         S = sum_s scale[s] * dot_s and M = sum_s min[s] * S_x[s], then acc = fma(float(S), dw * dx, acc),
//         accm = fma(float(M), dminw * dx, accm);
//       gemm (ggml_gemm_q4_K_8x8_q8_K, 4 activation rows at a time: rows 0 .. T - T % 4 - 1 of a
//         batch of T; the rest go through the gemv): the same per pair of sub-blocks, 4 fmas per
//         super-block into each accumulator.
//     Result acc - accm. The gemm's activation quantizer (ggml_quantize_mat_q8_K_4x8) gives
//     quantize_row_q8_K's quants, up to a sign flip of a whole super-block (q and d together) when
//     +max and -max both occur; the products are unchanged by it.
//   * Dequantization (ggml-quants.c, built without FMA): Q4_K/Q5_K d1 * q - m1 with d1 = d * scale,
//     m1 = dmin * min, each rounded; Q6_K (d * scale) * (q - 32).
#include <cmath>

#include "core/fp16.h"
#include "kernels/quant_internal.h"

namespace ponder::quant {

namespace {

constexpr int kSub = 32;  // elements per Q4_K/Q5_K sub-block (per Q6_K run of two scales)

// a * b rounded on its own: gcc may fuse a product that feeds an addition into one fma.
float mul_rounded(float a, float b) { return std::fma(a, b, 0.f); }

// The 6-bit scales and mins of the 8 sub-blocks of a Q4_K/Q5_K super-block (get_scale_min_k4):
// sub-blocks 0..3 are the low 6 bits of bytes 0..3 (scales) and 4..7 (mins); sub-blocks 4..7 take
// their low 4 bits from bytes 8..11 (scale: low nibble, min: high nibble) and their top 2 bits from
// the top 2 bits of bytes 0..3 (scales) and 4..7 (mins).
struct ScalesMins {
  int32_t scale[8], min[8];
};

ScalesMins unpack_scales_k4(const uint8_t s[12]) {
  ScalesMins r;
  for (int j = 0; j < 4; ++j) {
    r.scale[j] = s[j] & 63;
    r.min[j] = s[j + 4] & 63;
    r.scale[j + 4] = (s[j + 8] & 0x0F) | (s[j] >> 6) << 4;
    r.min[j + 4] = (s[j + 8] >> 4) | (s[j + 4] >> 6) << 4;
  }
  return r;
}

// The 256 nibbles of a Q4_K/Q5_K super-block in element order: 64-element chunk c is the low
// nibbles of qs[32c .. 32c+31] (sub-block 2c), then their high nibbles (sub-block 2c+1).
void unpack_nibbles_k(const uint8_t qs[kQK_K / 2], uint8_t q[kQK_K]) {
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < kSub; ++l) {
      q[64 * c + l] = qs[32 * c + l] & 0x0F;
      q[64 * c + kSub + l] = qs[32 * c + l] >> 4;
    }
}

// Q5_K's values 0..31: the nibble plus, as bit 4, bit s of qh[l] for element 32s + l.
void q5_k_values(const BlockQ5_K& b, uint8_t q[kQK_K]) {
  unpack_nibbles_k(b.qs, q);
  for (int s = 0; s < 8; ++s)
    for (int l = 0; l < kSub; ++l) q[kSub * s + l] = uint8_t(q[kSub * s + l] | ((b.qh[l] >> s) & 1) << 4);
}

// Q6_K's values 0..63 (the weight is d * scale * (q - 32)). In half h (128 elements), element
// 128h + 32k + l has as low 4 bits the low nibble of ql[64h + l] (k = 0), of ql[64h + 32 + l]
// (k = 1), the high nibble of ql[64h + l] (k = 2), of ql[64h + 32 + l] (k = 3), and as bits 4..5
// bits 2k, 2k+1 of qh[32h + l].
void q6_k_values(const BlockQ6_K& b, uint8_t q[kQK_K]) {
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < kSub; ++l) {
      const uint8_t* ql = b.ql + 64 * h;
      const int qh = b.qh[32 * h + l];
      uint8_t* o = q + 128 * h + l;
      o[0] = uint8_t((ql[l] & 0x0F) | (qh & 3) << 4);
      o[32] = uint8_t((ql[l + 32] & 0x0F) | ((qh >> 2) & 3) << 4);
      o[64] = uint8_t((ql[l] >> 4) | ((qh >> 4) & 3) << 4);
      o[96] = uint8_t((ql[l + 32] >> 4) | ((qh >> 6) & 3) << 4);
    }
}

// The exact sum of n products of unsigned weight values and activation quants.
int32_t dot_u8_i8(const uint8_t* q, const int8_t* x, int n) {
  int32_t s = 0;
  for (int i = 0; i < n; ++i) s += int32_t(q[i]) * int32_t(x[i]);
  return s;
}

// The sums of each 32 activation quants (sub-block s) from the sums of each 16.
void sub_block_sums(int32_t S[8], const int16_t bsums[kQK_K / 16]) {
  for (int s = 0; s < 8; ++s) S[s] = int32_t(bsums[2 * s]) + int32_t(bsums[2 * s + 1]);
}

// The one-row kernels' 8 int32 lanes of a super-block: lane m is the sum over the 8 runs r of
// 32 elements of scale(r, m) * (products of elements 32r + 4m .. 32r + 4m + 3), where scale(r, m)
// = scales[r] (stride 1, Q4_K/Q5_K) or scales[2r + m / 4] (stride 2, Q6_K).
void scaled_lanes(int32_t lane[8], const uint8_t q[kQK_K], const int8_t x[kQK_K], const int32_t* scales,
                  int stride) {
  for (int m = 0; m < 8; ++m) {
    lane[m] = 0;
    for (int r = 0; r < 8; ++r) {
      const int32_t sc = stride == 1 ? scales[r] : scales[2 * r + m / 4];
      lane[m] += sc * dot_u8_i8(q + kSub * r + 4 * m, x + kSub * r + 4 * m, 4);
    }
  }
}

// acc[m] = fma(d, float(lane[m]), acc[m]) for the 8 lanes of a super-block.
void fma_lanes(float acc[8], float d, const int32_t lane[8]) {
  for (int m = 0; m < 8; ++m) acc[m] = std::fma(d, float(lane[m]), acc[m]);
}

// llama.cpp's repacked Q4_K order over one row (see the top of this file): the exact sums of
// sub-blocks [s, s + n_sub) per fma, for n_sub = 8 (gemv) or 2 (gemm).
float dot_x8_q4_k_order(const uint8_t* w, const uint8_t* x, int64_t K, int n_sub) {
  const auto* wb = reinterpret_cast<const BlockQ4_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc = 0, accm = 0;
  uint8_t q[kQK_K];
  int32_t S[8];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    const ScalesMins sm = unpack_scales_k4(wb[b].scales);
    unpack_nibbles_k(wb[b].qs, q);
    sub_block_sums(S, xb[b].bsums);
    const float d = fp16_to_fp32(wb[b].d) * xb[b].d, dmin = fp16_to_fp32(wb[b].dmin) * xb[b].d;
    for (int s0 = 0; s0 < 8; s0 += n_sub) {
      int32_t sum = 0, mins = 0;
      for (int s = s0; s < s0 + n_sub; ++s) {
        sum += sm.scale[s] * dot_u8_i8(q + kSub * s, xb[b].qs + kSub * s, kSub);
        mins += sm.min[s] * S[s];
      }
      acc = std::fma(float(sum), d, acc);
      accm = std::fma(float(mins), dmin, accm);
    }
  }
  return acc - accm;
}

}  // namespace

// ---- Q4_K: w = d * scale * q - dmin * min, q a nibble ----

void dequantize_q4_k(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ4_K*>(row);
  uint8_t q[kQK_K];
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const ScalesMins sm = unpack_scales_k4(b[i].scales);
    unpack_nibbles_k(b[i].qs, q);
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    for (int s = 0; s < 8; ++s) {
      const float d1 = d * float(sm.scale[s]), m1 = mul_rounded(dmin, float(sm.min[s]));
      for (int l = 0; l < kSub; ++l) out[i * kQK_K + kSub * s + l] = mul_rounded(d1, float(q[kSub * s + l])) - m1;
    }
  }
}

// ggml_vec_dot_q4_K_q8_K (AVX2): see the top of this file.
float dot_q4_k(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ4_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc[8] = {}, accm[4] = {};
  uint8_t q[kQK_K];
  int32_t S[8], lane[8];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    const float d = xb[b].d * fp16_to_fp32(wb[b].d), dmin = -xb[b].d * fp16_to_fp32(wb[b].dmin);
    const ScalesMins sm = unpack_scales_k4(wb[b].scales);
    sub_block_sums(S, xb[b].bsums);
    for (int k = 0; k < 4; ++k)
      accm[k] = std::fma(dmin, float(sm.min[2 * k] * S[2 * k] + sm.min[2 * k + 1] * S[2 * k + 1]), accm[k]);
    unpack_nibbles_k(wb[b].qs, q);
    scaled_lanes(lane, q, xb[b].qs, sm.scale, 1);
    fma_lanes(acc, d, lane);
  }
  return hsum8(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
}

// ggml_gemv_q4_K_8x8_q8_K: one activation row against 8 repacked rows (decode steps, and the last
// T % 4 rows of a batch).
float dot_x8_q4_k(const uint8_t* w, const uint8_t* x, int64_t K) { return dot_x8_q4_k_order(w, x, K, 8); }

// ggml_gemm_q4_K_8x8_q8_K: 4 activation rows at a time (the first T - T % 4 rows of a batch).
float dot_x8_q4_k_gemm(const uint8_t* w, const uint8_t* x, int64_t K) { return dot_x8_q4_k_order(w, x, K, 2); }

// ---- Q5_K: Q4_K with 5-bit values ----

void dequantize_q5_k(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ5_K*>(row);
  uint8_t q[kQK_K];
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const ScalesMins sm = unpack_scales_k4(b[i].scales);
    q5_k_values(b[i], q);
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    for (int s = 0; s < 8; ++s) {
      const float d1 = d * float(sm.scale[s]), m1 = mul_rounded(dmin, float(sm.min[s]));
      for (int l = 0; l < kSub; ++l) out[i * kQK_K + kSub * s + l] = mul_rounded(d1, float(q[kSub * s + l])) - m1;
    }
  }
}

// ggml_vec_dot_q5_K_q8_K (AVX2): see the top of this file.
float dot_q5_k(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ5_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc[8] = {};
  float summs = 0;
  uint8_t q[kQK_K];
  int32_t S[8], lane[8];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    const float d = xb[b].d * fp16_to_fp32(wb[b].d), dmin = -xb[b].d * fp16_to_fp32(wb[b].dmin);
    const ScalesMins sm = unpack_scales_k4(wb[b].scales);
    sub_block_sums(S, xb[b].bsums);
    int32_t mins = 0;
    for (int s = 0; s < 8; ++s) mins += sm.min[s] * S[s];
    summs = std::fma(dmin, float(mins), summs);
    q5_k_values(wb[b], q);
    scaled_lanes(lane, q, xb[b].qs, sm.scale, 1);
    fma_lanes(acc, d, lane);
  }
  return hsum8(acc) + summs;
}

// ---- Q6_K: w = d * scale * (q - 32), 16 signed 8-bit scales ----

void dequantize_q6_k(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(row);
  uint8_t q[kQK_K];
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    q6_k_values(b[i], q);
    const float d = fp16_to_fp32(b[i].d);
    for (int e = 0; e < kQK_K; ++e) out[i * kQK_K + e] = d * float(b[i].scales[e / 16]) * float(int(q[e]) - 32);
  }
}

// ggml_vec_dot_q6_K_q8_K (AVX2): see the top of this file.
float dot_q6_k(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ6_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc[8] = {};
  uint8_t q[kQK_K];
  int32_t scales[kQK_K / 16], lane[8];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    const float d = xb[b].d * fp16_to_fp32(wb[b].d);
    q6_k_values(wb[b], q);
    for (int s = 0; s < kQK_K / 16; ++s) scales[s] = wb[b].scales[s];
    scaled_lanes(lane, q, xb[b].qs, scales, 2);
    for (int m = 0; m < 8; ++m)
      lane[m] -= 32 * (scales[2 * m] * xb[b].bsums[2 * m] + scales[2 * m + 1] * xb[b].bsums[2 * m + 1]);
    fma_lanes(acc, d, lane);
  }
  return hsum8(acc);
}

}  // namespace ponder::quant
