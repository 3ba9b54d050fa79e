// The low-bit k-quants against Q8_K activations, in llama.cpp's arithmetic (see kernels/quant.h):
// Q2_K, Q3_K and IQ4_XS. All three share one shape of product: per 256-weight super-block, 8
// exact integer lane sums (lane j: weights 32c + 4j .. 32c + 4j + 3 of every 32-chunk c, each
// product times its sub-block's integer scale), one float multiply-add per lane and super-block,
// and the 8 lanes reduced by hsum8. They differ in how the quants and scales are unpacked.
#include <cmath>

#include "core/fp16.h"
#include "kernels/quant_internal.h"

namespace ponder::quant {

namespace {

constexpr int kSubBlocks = kQK_K / 16;  // Q2_K/Q3_K scale groups of 16 weights (IQ4_XS: 32)
constexpr int kLanes = 8;

// The 2-bit fields of Q2_K and Q3_K: weight 128h + 32s + l (h < 2, s < 4, l < 32) is bits
// 2s..2s+1 of qs[32h + l].
int low2(const uint8_t qs[kQK_K / 4], int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3; }

// Q2_K: the 256 quants (0..3) and each sub-block's 4-bit scale and min.
void q2_k_unpack(const BlockQ2_K& b, int8_t q[kQK_K], int scale[kSubBlocks], int min[kSubBlocks]) {
  for (int e = 0; e < kQK_K; ++e) q[e] = int8_t(low2(b.qs, e));
  for (int j = 0; j < kSubBlocks; ++j) {
    scale[j] = b.scales[j] & 0x0F;
    min[j] = b.scales[j] >> 4;
  }
}

// Q3_K: the 256 signed quants (low 2 bits minus 4 where the hmask bit is clear; the bit of
// weight 32c + l is bit c of hmask[l]) and the 16 signed 6-bit scales: the low 4 bits of scale j
// are nibble j / 8 of scales[j % 8], the high 2 bits are bits 2(j / 4)..2(j / 4)+1 of
// scales[8 + j % 4]; the stored value is offset by 32.
void q3_k_unpack(const BlockQ3_K& b, int8_t q[kQK_K], int scale[kSubBlocks]) {
  for (int e = 0; e < kQK_K; ++e) {
    const bool high = (b.hmask[e % 32] >> (e / 32)) & 1;
    q[e] = int8_t(low2(b.qs, e) - (high ? 0 : 4));
  }
  for (int j = 0; j < kSubBlocks; ++j) {
    const int lo = (b.scales[j % 8] >> (4 * (j / 8))) & 0x0F;
    const int hi = (b.scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    scale[j] = (lo | hi << 4) - 32;
  }
}

// IQ4_XS: the 256 table values and the 8 signed 6-bit scales of its 32-weight sub-blocks (low
// 4 bits: nibble ib % 2 of scales_l[ib / 2]; high 2 bits: bits 2ib..2ib+1 of scales_h; offset 32).
// In sub-block ib, qs[16ib + j] holds weight j (low nibble) and j + 16 (high nibble).
void iq4_xs_unpack(const BlockIQ4_XS& b, int8_t q[kQK_K], int scale[kQK_K / 32]) {
  for (int ib = 0; ib < kQK_K / 32; ++ib) {
    for (int j = 0; j < 16; ++j) {
      q[32 * ib + j] = kValuesIQ4NL[b.qs[16 * ib + j] & 0x0F];
      q[32 * ib + j + 16] = kValuesIQ4NL[b.qs[16 * ib + j] >> 4];
    }
    const int lo = (b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0F;
    const int hi = (b.scales_h >> (2 * ib)) & 3;
    scale[ib] = (lo | hi << 4) - 32;
  }
}

// The 8 integer lane sums of one super-block: lane j = sum over 32-chunks c and i < 4 of
// scale[e / group] * q[e] * x[e], e = 32c + 4j + i (group: weights per scale, 16 or 32). Exact:
// llama.cpp's maddubs/madd steps never saturate for these ranges.
void lane_sums(int32_t out[kLanes], const int8_t q[kQK_K], const int8_t x[kQK_K], const int* scale, int group) {
  for (int j = 0; j < kLanes; ++j) {
    int32_t s = 0;
    for (int c = 0; c < kQK_K / 32; ++c)
      for (int e = 32 * c + 4 * j; e < 32 * c + 4 * j + 4; ++e) s += scale[e / group] * int32_t(q[e]) * int32_t(x[e]);
    out[j] = s;
  }
}

// Q2_K's integer sums over sub-blocks [j0, j1): sum of scale * (q . x) and of min * bsum.
void q2_k_sums(const int8_t q[kQK_K], const int scale[kSubBlocks], const int min[kSubBlocks], const BlockQ8_K& x,
               int j0, int j1, int32_t& sum, int32_t& sum_min) {
  sum = sum_min = 0;
  for (int j = j0; j < j1; ++j) {
    int32_t s = 0;
    for (int e = 16 * j; e < 16 * j + 16; ++e) s += int32_t(q[e]) * int32_t(x.qs[e]);
    sum += scale[j] * s;
    sum_min += min[j] * int32_t(x.bsums[j]);
  }
}

}  // namespace

void dequantize_q2_k(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ2_K*>(row);
  int8_t q[kQK_K];
  int scale[kSubBlocks], min[kSubBlocks];
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    q2_k_unpack(b[i], q, scale, min);
    const float d = fp16_to_fp32(b[i].d), dmin = fp16_to_fp32(b[i].dmin);
    for (int e = 0; e < kQK_K; ++e) {
      const float dl = d * float(scale[e / 16]), ml = dmin * float(min[e / 16]);
      out[i * kQK_K + e] = dl * float(q[e]) - ml;  // two roundings, as dequantize_row_q2_K (no fma)
    }
  }
}

void dequantize_q3_k(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ3_K*>(row);
  int8_t q[kQK_K];
  int scale[kSubBlocks];
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    q3_k_unpack(b[i], q, scale);
    const float d = fp16_to_fp32(b[i].d);
    for (int e = 0; e < kQK_K; ++e) out[i * kQK_K + e] = (d * float(scale[e / 16])) * float(q[e]);
  }
}

void dequantize_iq4_xs(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockIQ4_XS*>(row);
  int8_t q[kQK_K];
  int scale[kQK_K / 32];
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    iq4_xs_unpack(b[i], q, scale);
    const float d = fp16_to_fp32(b[i].d);
    for (int e = 0; e < kQK_K; ++e) out[i * kQK_K + e] = (d * float(scale[e / 32])) * float(q[e]);
  }
}

// ggml_vec_dot_q2_K_q8_K (AVX2; no AVX-512 variant): per super-block, first the mins term in the
// same 8 lanes, lane j = min[2j] * bsums[2j] + min[2j+1] * bsums[2j+1], added as
// acc[j] = fma(-dx * dmin, float(that), acc[j]); then the scaled quant sums,
// acc[j] = fma(dx * d, float(lane sum j), acc[j]); hsum8.
float dot_q2_k(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ2_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc[kLanes] = {};
  int8_t q[kQK_K];
  int scale[kSubBlocks], min[kSubBlocks];
  int32_t sums[kLanes];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    q2_k_unpack(wb[b], q, scale, min);
    const float d = xb[b].d * fp16_to_fp32(wb[b].d);
    const float dmin = -xb[b].d * fp16_to_fp32(wb[b].dmin);
    for (int j = 0; j < kLanes; ++j) {
      const int32_t m = min[2 * j] * xb[b].bsums[2 * j] + min[2 * j + 1] * xb[b].bsums[2 * j + 1];
      acc[j] = std::fma(dmin, float(m), acc[j]);
    }
    lane_sums(sums, q, xb[b].qs, scale, 16);
    for (int j = 0; j < kLanes; ++j) acc[j] = std::fma(d, float(sums[j]), acc[j]);
  }
  return hsum8(acc);
}

// ggml_gemv_q2_K_8x8_q8_K (one activation row against 8 repacked weight rows): per super-block
// one exact integer sum of scale * (q . x) over all 16 sub-blocks and one of min * bsum, then
// acc = fma(float(sum), dw * dx, acc) and acc_min = fma(float(sum_min), dmin_w * dx, acc_min);
// the result is acc - acc_min.
float dot_x8_q2_k(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ2_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc = 0, acc_min = 0;
  int8_t q[kQK_K];
  int scale[kSubBlocks], min[kSubBlocks];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    q2_k_unpack(wb[b], q, scale, min);
    int32_t sum = 0, sum_min = 0;
    q2_k_sums(q, scale, min, xb[b], 0, kSubBlocks, sum, sum_min);
    acc = std::fma(float(sum), fp16_to_fp32(wb[b].d) * xb[b].d, acc);
    acc_min = std::fma(float(sum_min), fp16_to_fp32(wb[b].dmin) * xb[b].d, acc_min);
  }
  return acc - acc_min;
}

// ggml_gemm_q2_K_8x8_q8_K (4 activation rows at a time, every one of its AVX-512 and AVX2 paths):
// as the gemv, but the integer sums and the two fmas are per half super-block (sub-blocks 0..7,
// then 8..15).
float dot_x8_q2_k_gemm(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ2_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc = 0, acc_min = 0;
  int8_t q[kQK_K];
  int scale[kSubBlocks], min[kSubBlocks];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    q2_k_unpack(wb[b], q, scale, min);
    const float d = fp16_to_fp32(wb[b].d) * xb[b].d, dmin = fp16_to_fp32(wb[b].dmin) * xb[b].d;
    for (int h = 0; h < 2; ++h) {
      int32_t sum = 0, sum_min = 0;
      q2_k_sums(q, scale, min, xb[b], 8 * h, 8 * h + 8, sum, sum_min);
      acc = std::fma(float(sum), d, acc);
      acc_min = std::fma(float(sum_min), dmin, acc_min);
    }
  }
  return acc - acc_min;
}

// ggml_vec_dot_q3_K_q8_K (AVX2; no AVX-512 variant): the signed quants times the activations in
// the 8 lanes, scaled per sub-block; acc[j] = fma(dx * dw, float(lane sum j), acc[j]); hsum8.
float dot_q3_k(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ3_K*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc[kLanes] = {};
  int8_t q[kQK_K];
  int scale[kSubBlocks];
  int32_t sums[kLanes];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    q3_k_unpack(wb[b], q, scale);
    lane_sums(sums, q, xb[b].qs, scale, 16);
    const float d = xb[b].d * fp16_to_fp32(wb[b].d);
    for (int j = 0; j < kLanes; ++j) acc[j] = std::fma(d, float(sums[j]), acc[j]);
  }
  return hsum8(acc);
}

// ggml_vec_dot_iq4_xs_q8_K (AVX2; no AVX-512 variant): the table values times the activations in
// the 8 lanes, scaled per 32-weight sub-block; acc[j] = fma(dw * dx, float(lane sum j), acc[j]);
// hsum8.
float dot_iq4_xs(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockIQ4_XS*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc[kLanes] = {};
  int8_t q[kQK_K];
  int scale[kQK_K / 32];
  int32_t sums[kLanes];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    iq4_xs_unpack(wb[b], q, scale);
    lane_sums(sums, q, xb[b].qs, scale, 32);
    const float d = fp16_to_fp32(wb[b].d) * xb[b].d;
    for (int j = 0; j < kLanes; ++j) acc[j] = std::fma(d, float(sums[j]), acc[j]);
  }
  return hsum8(acc);
}

// llama.cpp's "IQ panel" kernels (ggml-cpu/iqp.cpp: 8 weight rows decoded to int8, every token of
// a matrix product with at least 8 of them; its gemm and gemv agree): per super-block one exact
// integer sum of scale * (q . x) over the 8 sub-blocks, then acc = fma(float(sum), dw * dx, acc).
float dot_x8_iq4_xs(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockIQ4_XS*>(w);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  float acc = 0;
  int8_t q[kQK_K];
  int scale[kQK_K / 32];
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    iq4_xs_unpack(wb[b], q, scale);
    int32_t sum = 0;
    for (int e = 0; e < kQK_K; ++e) sum += scale[e / 32] * int32_t(q[e]) * int32_t(xb[b].qs[e]);
    acc = std::fma(float(sum), fp16_to_fp32(wb[b].d) * xb[b].d, acc);
  }
  return acc;
}

}  // namespace ponder::quant
