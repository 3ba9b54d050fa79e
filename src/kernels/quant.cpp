// The quantized-type table, the activation quantizers (Q8_0, Q8_1, Q8_K) and Q8_0's row.
#include "kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant_internal.h"

namespace ponder {

namespace {

constexpr QuantType kTable[] = {
    {GgmlType::Q8_0, GgmlType::Q8_0, quant::dequantize_q8_0, quant::dot_q8_0, nullptr, nullptr, nullptr},
    {GgmlType::Q4_0, GgmlType::Q8_0, quant::dequantize_q4_0, quant::dot_q4_0, quant::dot_x8_q4_0, nullptr, nullptr},
    {GgmlType::Q4_1, GgmlType::Q8_1, quant::dequantize_q4_1, quant::dot_q4_1, nullptr, nullptr, nullptr},
    {GgmlType::Q5_0, GgmlType::Q8_0, quant::dequantize_q5_0, quant::dot_q5_0, nullptr, nullptr, nullptr},
    {GgmlType::Q5_1, GgmlType::Q8_1, quant::dequantize_q5_1, quant::dot_q5_1, nullptr, nullptr, nullptr},
    {GgmlType::IQ4_NL, GgmlType::Q8_0, quant::dequantize_iq4_nl, quant::dot_iq4_nl, quant::dot_x8_iq4_nl, nullptr, nullptr},
    {GgmlType::Q2_K, GgmlType::Q8_K, quant::dequantize_q2_k, quant::dot_q2_k, quant::dot_x8_q2_k, quant::dot_x8_q2_k_gemm, nullptr},
    {GgmlType::Q3_K, GgmlType::Q8_K, quant::dequantize_q3_k, quant::dot_q3_k, nullptr, nullptr, nullptr},
    {GgmlType::IQ4_XS, GgmlType::Q8_K, quant::dequantize_iq4_xs, quant::dot_iq4_xs, nullptr, nullptr, quant::dot_x8_iq4_xs},
    {GgmlType::Q4_K, GgmlType::Q8_K, quant::dequantize_q4_k, quant::dot_q4_k, quant::dot_x8_q4_k, quant::dot_x8_q4_k_gemm, nullptr},
    {GgmlType::Q5_K, GgmlType::Q8_K, quant::dequantize_q5_k, quant::dot_q5_k, nullptr, nullptr, nullptr},
    {GgmlType::Q6_K, GgmlType::Q8_K, quant::dequantize_q6_k, quant::dot_q6_k, nullptr, nullptr, nullptr},
};

// Round half to even, as llama.cpp's vectorized quantizers (_mm256_round_ps) and its
// nearest_int (the 1.5 * 2^23 trick) do.
int round_even(float v) { return int(std::nearbyint(v)); }

// One block of 32: q = round-half-even(x * 127 / max|x|); returns d = max|x| / 127 (unrounded).
float quantize_block_q8(int8_t q[kQK], const float* x) {
  float amax = 0;
  for (int i = 0; i < kQK; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float id = amax != 0.f ? 127.f / amax : 0.f;
  for (int i = 0; i < kQK; ++i) q[i] = int8_t(round_even(x[i] * id));
  return amax / 127.f;
}

void quantize_row_q8_0_act(ActBlockQ8* out, const float* x, int64_t K) {
  BlockQ8_0 blk;
  for (int64_t b = 0; b < K / kQ8Block; ++b) {
    quantize_row_q8_0(&blk, x + b * kQ8Block, kQ8Block);
    ActBlockQ8& a = out[b];
    std::memcpy(a.qs, blk.qs, kQ8Block);
    a.d = fp16_to_fp32(blk.d);
    a.sum = 0;
    for (int j = 0; j < 8; ++j) {
      const int32_t s = blk.qs[4 * j] + blk.qs[4 * j + 1] + blk.qs[4 * j + 2] + blk.qs[4 * j + 3];
      a.corr[j] = -128 * s;
      a.sum += s;
    }
  }
}

// llama.cpp's x86 quantize_row_q8_1: Q8_0's rounding, plus s = fp16(d * sum(q)) with the
// unrounded d.
void quantize_row_q8_1_act(ActBlockQ8_1* out, const float* x, int64_t K) {
  for (int64_t b = 0; b < K / kQK; ++b) {
    const float d = quantize_block_q8(out[b].qs, x + b * kQK);
    int32_t sum = 0;
    for (int i = 0; i < kQK; ++i) sum += out[b].qs[i];
    out[b].d = fp16_to_fp32(fp32_to_fp16(d));
    out[b].s = fp16_to_fp32(fp32_to_fp16(d * float(sum)));
  }
}

// llama.cpp's quantize_row_q8_K (its reference version is the x86 one): the scale from the
// signed value of largest magnitude (the first one), q = min(127, round(-127 / max * x)),
// d = 1 / (-127 / max); bsums of each 16 quants. An all-zero block has d = 0 and zero quants.
void quantize_row_q8_K_act(BlockQ8_K* out, const float* x, int64_t K) {
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    const float* xb = x + b * kQK_K;
    BlockQ8_K& y = out[b];
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(xb[j]);
      if (ax > amax) amax = ax, max = xb[j];
    }
    if (amax == 0) {
      std::memset(&y, 0, sizeof y);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) y.qs[j] = int8_t(std::min(127, round_even(iscale * xb[j])));
    for (int j = 0; j < kQK_K / 16; ++j) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y.qs[j * 16 + i];
      y.bsums[j] = int16_t(sum);
    }
    y.d = 1 / iscale;
  }
}

}  // namespace

const QuantType* quant_type(GgmlType type) {
  for (const QuantType& q : kTable)
    if (q.type == type) return &q;
  return nullptr;
}

int64_t first_nonfinite_scale(GgmlType type, const uint8_t* data, int64_t n_blocks) {
  // Byte offsets of a block's fp16 scales.
  size_t off[2] = {0, 0};
  int n = 1;
  switch (type) {
    case GgmlType::Q4_1: case GgmlType::Q5_1: case GgmlType::Q4_K: case GgmlType::Q5_K: off[1] = 2; n = 2; break;
    case GgmlType::Q2_K: off[0] = offsetof(BlockQ2_K, d); off[1] = offsetof(BlockQ2_K, dmin); n = 2; break;
    case GgmlType::Q3_K: off[0] = offsetof(BlockQ3_K, d); break;
    case GgmlType::Q6_K: off[0] = offsetof(BlockQ6_K, d); break;
    default: break;  // Q4_0, Q5_0, Q8_0, IQ4_NL, IQ4_XS: d first
  }
  const size_t size = size_t(ggml_type_size(type));
  int64_t first = n_blocks;
#pragma omp parallel for schedule(static) reduction(min : first) if (n_blocks >= (1 << 16))
  for (int64_t b = 0; b < n_blocks; ++b)
    for (int i = 0; i < n; ++i) {
      uint16_t h;
      std::memcpy(&h, data + size_t(b) * size + off[i], 2);
      if ((h & 0x7c00) == 0x7c00) first = std::min(first, b);  // exponent all ones: inf or NaN
    }
  return first < n_blocks ? first : -1;
}

void quantize_row_q8_0(BlockQ8_0* out, const float* x, int64_t K) {
  for (int64_t b = 0; b < K / kQ8Block; ++b) out[b].d = fp32_to_fp16(quantize_block_q8(out[b].qs, x + b * kQ8Block));
}

int64_t activation_row_bytes(GgmlType partner, int64_t K) {
  switch (partner) {
    case GgmlType::Q8_0: return K / kQ8Block * int64_t(sizeof(ActBlockQ8));
    case GgmlType::Q8_1: return K / kQK * int64_t(sizeof(ActBlockQ8_1));
    case GgmlType::Q8_K: return K / kQK_K * int64_t(sizeof(BlockQ8_K));
    default: return 0;
  }
}

void quantize_activation_row(uint8_t* out, const float* x, int64_t K, GgmlType partner) {
  switch (partner) {
    case GgmlType::Q8_0: return quantize_row_q8_0_act(reinterpret_cast<ActBlockQ8*>(out), x, K);
    case GgmlType::Q8_1: return quantize_row_q8_1_act(reinterpret_cast<ActBlockQ8_1*>(out), x, K);
    case GgmlType::Q8_K: return quantize_row_q8_K_act(reinterpret_cast<BlockQ8_K*>(out), x, K);
    default: return;
  }
}

namespace quant {

void dequantize_q8_0(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(row);
  for (int64_t i = 0; i < K / kQ8Block; ++i) {
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQ8Block; ++j) out[i * kQ8Block + j] = d * float(b[i].qs[j]);
  }
}

// ggml_vec_dot_q8_0_q8_0: per block 8 exact integer lane sums (lane j: weights 4j..4j+3), each
// lane accumulated as acc[j] = fma(dw * dx, sum_j, acc[j]); then hsum8.
float dot_q8_0(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ8_0*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc[8] = {};
  for (int64_t b = 0; b < K / kQ8Block; ++b) {
    const float d = fp16_to_fp32(wb[b].d) * xb[b].d;
    for (int j = 0; j < 8; ++j) {
      int32_t s = 0;
      for (int i = 4 * j; i < 4 * j + 4; ++i) s += int32_t(wb[b].qs[i]) * int32_t(xb[b].qs[i]);
      acc[j] = std::fma(d, float(s), acc[j]);
    }
  }
  return hsum8(acc);
}

}  // namespace quant

}  // namespace ponder
