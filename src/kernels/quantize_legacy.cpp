// Weight quantizers for the legacy types and IQ4_NL / IQ4_XS, byte for byte as llama.cpp 0.5.0's
// llama-quantize writes them without an importance matrix, and the one entry point quantize_row.
//
// llama.cpp's ggml-quants.c (quantize_row_<type>_ref, quantize_iq4_nl, quantize_iq4_xs) lives in
// libggml-base, which its build compiles as C for plain x86-64 (SSE2, no FMA): every a * b + c
// is a rounded multiply, then a rounded add, in source order. GCC contracts such pairs into one
// fma by default in C++ when the target has FMA (-march=native), so this file turns contraction
// off for everything below, headers included; the code then computes exactly what the C does.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize.h"

namespace ponder {

namespace {

// ggml's nearest_int: round half to even through the float mantissa (|x| < 2^22).
int nearest_int(float x) {
  const float v = x + 12582912.f;
  int32_t i;
  std::memcpy(&i, &v, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// The index of the value of `values` (16 ascending int8) nearest to x; ties go up.
int best_index_iq4(float x) {
  const int8_t* v = kValuesIQ4NL;
  if (x <= v[0]) return 0;
  if (x >= v[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (x < v[mid]) hi = mid;
    else lo = mid;
  }
  return x - v[hi - 1] < v[hi] - x ? hi - 1 : hi;
}

// The signed value of largest magnitude in x (the first one on ties), and that magnitude.
void signed_max(const float* x, int n, float& amax, float& max) {
  amax = 0.f, max = 0.f;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
}

void min_max(const float* x, int n, float& min, float& max) {
  min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// 32 values (0..31 or 0..15) -> nibbles (element j low, j + 16 high) and, for 5-bit values, bit 4
// of element j at bit j of qh.
void pack_q5(const uint8_t q[kQK], uint8_t qs[kQK / 2], uint8_t qh_bytes[4]) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = uint8_t((q[j] & 0x0F) | (q[j + 16] & 0x0F) << 4);
    qh |= uint32_t(q[j] >> 4 & 1) << j;
    qh |= uint32_t(q[j + 16] >> 4 & 1) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

void check_row(int64_t K, int64_t block, const char* type) {
  if (K <= 0 || K % block != 0)
    throw InvalidArgument(std::string("quantize_row: ") + type + " rows need a positive multiple of " +
                          std::to_string(block) + " values, got " + std::to_string(K));
}

// One weight per value of a block, chosen as llama.cpp's quantize_row_iq4_nl_impl does without an
// importance matrix (weight x^2; the scale search over 2 * 7 + 1 trial scales). Returns the
// block's scale (0 for an all-but-zero block); L gets its indices (left as is for a zero block).
float iq4_block_scale(const float* x, uint8_t L[kQK]) {
  constexpr int kTries = 7;
  const int8_t* values = kValuesIQ4NL;
  float weight[kQK];
  for (int j = 0; j < kQK; ++j) weight[j] = x[j] * x[j];
  float amax, max;
  signed_max(x, kQK, amax, max);
  if (amax < 1e-15f) return 0.f;
  float d = -max / values[0];
  float id = 1 / d;
  float sumqx = 0, sumq2 = 0;
  for (int j = 0; j < kQK; ++j) {
    const int l = best_index_iq4(id * x[j]);
    L[j] = uint8_t(l);
    const float q = values[l];
    sumqx += weight[j] * q * x[j];
    sumq2 += weight[j] * q * q;
  }
  d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int itry = -kTries; itry <= kTries; ++itry) {
    id = (itry + values[0]) / max;
    sumqx = sumq2 = 0;
    for (int j = 0; j < kQK; ++j) {
      const float q = values[best_index_iq4(id * x[j])];
      sumqx += weight[j] * q * x[j];
      sumq2 += weight[j] * q * q;
    }
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) d = sumqx / sumq2, best = d * sumqx;
  }
  return d;
}

// Indices (0..15) of 32 values -> 16 bytes, element j low nibble, j + 16 high.
void pack_nibbles(const uint8_t L[kQK], uint8_t qs[kQK / 2]) {
  for (int j = 0; j < kQK / 2; ++j) qs[j] = uint8_t(L[j] | L[j + 16] << 4);
}

}  // namespace

namespace quantize {

// d = max / -8 (max: the signed value of largest magnitude), q = min(15, trunc(x / d + 8.5)).
void row_q4_0(uint8_t* out, const float* x, int64_t K) {
  check_row(K, kQK, "Q4_0");
  auto* y = reinterpret_cast<BlockQ4_0*>(out);
  for (int64_t i = 0; i < K / kQK; ++i) {
    const float* xb = x + i * kQK;
    float amax, max;
    signed_max(xb, kQK, amax, max);
    const float d = max / -8;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = xb[j] * id, x1 = xb[j + 16] * id;
      const int q0 = std::min(15, int(x0 + 8.5f)), q1 = std::min(15, int(x1 + 8.5f));
      y[i].qs[j] = uint8_t(q0 | q1 << 4);
    }
  }
}

// d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5)).
void row_q4_1(uint8_t* out, const float* x, int64_t K) {
  check_row(K, kQK, "Q4_1");
  auto* y = reinterpret_cast<BlockQ4_1*>(out);
  for (int64_t i = 0; i < K / kQK; ++i) {
    const float* xb = x + i * kQK;
    float min, max;
    min_max(xb, kQK, min, max);
    const float d = (max - min) / 15;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const float x0 = (xb[j] - min) * id, x1 = (xb[j + 16] - min) * id;
      const int q0 = std::min(15, int(x0 + 0.5f)), q1 = std::min(15, int(x1 + 0.5f));
      y[i].qs[j] = uint8_t(q0 | q1 << 4);
    }
  }
}

// d = max / -16, q = min(31, trunc(x / d + 16.5)).
void row_q5_0(uint8_t* out, const float* x, int64_t K) {
  check_row(K, kQK, "Q5_0");
  auto* y = reinterpret_cast<BlockQ5_0*>(out);
  for (int64_t i = 0; i < K / kQK; ++i) {
    const float* xb = x + i * kQK;
    float amax, max;
    signed_max(xb, kQK, amax, max);
    const float d = max / -16;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = uint8_t(std::min(31, int(xb[j] * id + 16.5f)));
    pack_q5(q, y[i].qs, y[i].qh);
  }
}

// d = (max - min) / 31, m = min, q = trunc((x - min) / d + 0.5) (no clamp, as llama.cpp).
void row_q5_1(uint8_t* out, const float* x, int64_t K) {
  check_row(K, kQK, "Q5_1");
  auto* y = reinterpret_cast<BlockQ5_1*>(out);
  for (int64_t i = 0; i < K / kQK; ++i) {
    const float* xb = x + i * kQK;
    float min, max;
    min_max(xb, kQK, min, max);
    const float d = (max - min) / 31;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    y[i].m = fp32_to_fp16(min);
    uint8_t q[kQK];
    for (int j = 0; j < kQK; ++j) q[j] = uint8_t(int((xb[j] - min) * id + 0.5f));
    pack_q5(q, y[i].qs, y[i].qh);
  }
}

// d = max|x| / 127, q = roundf(x * (1 / d)) (half away from zero). This is llama-quantize's
// reference rounding, not the activation quantizer of kernels/quant.h (round half to even).
void row_q8_0(uint8_t* out, const float* x, int64_t K) {
  check_row(K, kQ8Block, "Q8_0");
  auto* y = reinterpret_cast<BlockQ8_0*>(out);
  for (int64_t i = 0; i < K / kQ8Block; ++i) {
    const float* xb = x + i * kQ8Block;
    float amax = 0.f;
    for (int j = 0; j < kQ8Block; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127;
    const float id = d != 0.f ? 1.0f / d : 0.0f;
    y[i].d = fp32_to_fp16(d);
    for (int j = 0; j < kQ8Block; ++j) y[i].qs[j] = int8_t(std::round(xb[j] * id));
  }
}

// Per block of 32: the best scale of iq4_block_scale, stored as fp16; the indices recomputed
// against that (unrounded) scale.
void row_iq4_nl(uint8_t* out, const float* x, int64_t K) {
  check_row(K, kQK, "IQ4_NL");
  auto* y = reinterpret_cast<BlockIQ4_NL*>(out);
  for (int64_t i = 0; i < K / kQK; ++i) {
    const float* xb = x + i * kQK;
    uint8_t L[kQK];
    const float d = iq4_block_scale(xb, L);
    y[i].d = fp32_to_fp16(d);
    const float id = d != 0.f ? 1 / d : 0;
    for (int j = 0; j < kQK; ++j) L[j] = uint8_t(best_index_iq4(id * xb[j]));
    pack_nibbles(L, y[i].qs);
  }
}

// Per super-block of 256: 8 block scales as in IQ4_NL, then one fp16 scale d = -s / 32 (s: the
// block scale of largest magnitude) and 6-bit block scales l = clamp(nearest(scale / d), -32, 31)
// stored + 32; indices against d * l.
void row_iq4_xs(uint8_t* out, const float* x, int64_t K) {
  check_row(K, kQK_K, "IQ4_XS");
  constexpr int kBlocks = kQK_K / kQK;
  auto* y = reinterpret_cast<BlockIQ4_XS*>(out);
  for (int64_t i = 0; i < K / kQK_K; ++i) {
    const float* xs = x + i * kQK_K;
    BlockIQ4_XS& b = y[i];
    uint8_t L[kQK_K];
    float scales[kBlocks];
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < kBlocks; ++ib) {
      scales[ib] = iq4_block_scale(xs + ib * kQK, L + ib * kQK);
      if (std::fabs(scales[ib]) > amax_scale) amax_scale = std::fabs(scales[ib]), max_scale = scales[ib];
    }
    const float d = -max_scale / 32;
    b.d = fp32_to_fp16(d);
    b.scales_h = 0;
    const float id = d != 0.f ? 1 / d : 0.f;
    for (int ib = 0; ib < kBlocks; ++ib) {
      const int l = std::clamp(nearest_int(id * scales[ib]), -32, 31);
      const float dl = d * l;
      const float idl = dl != 0.f ? 1 / dl : 0.f;
      for (int j = 0; j < kQK; ++j) L[ib * kQK + j] = uint8_t(best_index_iq4(idl * xs[ib * kQK + j]));
      const int ls = l + 32;
      if (ib % 2 == 0) b.scales_l[ib / 2] = uint8_t(ls & 0xf);
      else b.scales_l[ib / 2] |= uint8_t((ls & 0xf) << 4);
      b.scales_h |= uint16_t((ls >> 4) << 2 * ib);
    }
    for (int ib = 0; ib < kBlocks; ++ib) pack_nibbles(L + ib * kQK, b.qs + ib * kQK / 2);
  }
}

}  // namespace quantize

bool can_quantize(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q8_0:
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
    case GgmlType::IQ4_NL: case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

void quantize_row(uint8_t* out, const float* x, int64_t K, GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: return quantize::row_q4_0(out, x, K);
    case GgmlType::Q4_1: return quantize::row_q4_1(out, x, K);
    case GgmlType::Q5_0: return quantize::row_q5_0(out, x, K);
    case GgmlType::Q5_1: return quantize::row_q5_1(out, x, K);
    case GgmlType::Q8_0: return quantize::row_q8_0(out, x, K);
    case GgmlType::Q2_K: return quantize::row_q2_k(out, x, K);
    case GgmlType::Q3_K: return quantize::row_q3_k(out, x, K);
    case GgmlType::Q4_K: return quantize::row_q4_k(out, x, K);
    case GgmlType::Q5_K: return quantize::row_q5_k(out, x, K);
    case GgmlType::Q6_K: return quantize::row_q6_k(out, x, K);
    case GgmlType::IQ4_NL: return quantize::row_iq4_nl(out, x, K);
    case GgmlType::IQ4_XS: return quantize::row_iq4_xs(out, x, K);
    default:
      throw InvalidArgument("quantize_row: cannot quantize to " + ggml_type_name(uint32_t(type)) +
                            " (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS)");
  }
}

}  // namespace ponder
