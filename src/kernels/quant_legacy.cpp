// The legacy quants against their activation partners, in llama.cpp's arithmetic (see
// kernels/quant.h): Q4_0 (partner Q8_0).
#include <cmath>

#include "core/fp16.h"
#include "kernels/quant_internal.h"

namespace ponder::quant {

namespace {

// The 32 signed weight values of a Q4_0 block in element order: low nibbles are elements 0..15,
// high nibbles 16..31, each minus 8.
void q4_0_values(const BlockQ4_0& b, int8_t q[kQK]) {
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = int8_t((b.qs[j] & 0x0F) - 8);
    q[j + kQK / 2] = int8_t((b.qs[j] >> 4) - 8);
  }
}

}  // namespace

void dequantize_q4_0(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(row);
  int8_t q[kQK];
  for (int64_t i = 0; i < K / kQK; ++i) {
    q4_0_values(b[i], q);
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) out[i * kQK + j] = d * float(q[j]);
  }
}

// ggml_vec_dot_q4_0_q8_0 (AVX2): the block's 32 values against the activation quants, lane j
// holding elements 4j..4j+3; acc[j] = fma(dw * dx, sum_j, acc[j]) block after block; hsum8.
float dot_q4_0(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ4_0*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc[8] = {};
  int8_t q[kQK];
  for (int64_t b = 0; b < K / kQK; ++b) {
    q4_0_values(wb[b], q);
    const float d = fp16_to_fp32(wb[b].d) * xb[b].d;
    for (int j = 0; j < 8; ++j) {
      int32_t s = 0;
      for (int i = 4 * j; i < 4 * j + 4; ++i) s += int32_t(q[i]) * int32_t(xb[b].qs[i]);
      acc[j] = std::fma(d, float(s), acc[j]);
    }
  }
  return hsum8(acc);
}

// ggml_gemv/gemm_q4_0_8x8_q8_0 (the 8-row repacked kernels): per block the exact integer sum of
// all 32 products, then acc = fma(sum, dw * dx, acc); no lanes.
float dot_x8_q4_0(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ4_0*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc = 0;
  int8_t q[kQK];
  for (int64_t b = 0; b < K / kQK; ++b) {
    q4_0_values(wb[b], q);
    int32_t s = 0;
    for (int i = 0; i < kQK; ++i) s += int32_t(q[i]) * int32_t(xb[b].qs[i]);
    acc = std::fma(float(s), fp16_to_fp32(wb[b].d) * xb[b].d, acc);
  }
  return acc;
}

}  // namespace ponder::quant
