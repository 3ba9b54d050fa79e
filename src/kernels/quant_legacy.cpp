// The legacy quants and IQ4_NL against their activation partners, in llama.cpp's arithmetic (see
// kernels/quant.h): Q4_0, Q5_0, IQ4_NL (partner Q8_0) and Q4_1, Q5_1 (partner Q8_1).
//
// What llama.cpp 0.5.0 does on x86 with AVX2/AVX-512 (arch/x86/quants.c, repack.cpp, llamafile):
//   * every integer part is exact: per block, lane j (j = 0..7) holds the sum of the products of
//     elements 4j..4j+3 (maddubs/dpbusd never saturate for these value ranges);
//   * Q4_0, Q5_0: acc[j] = fma(dw * dx, lane_j, acc[j]) block after block, then hsum8. llamafile's
//     tinyBLAS (prompts) does the same per output, so one order serves every batch size.
//   * Q4_1, Q5_1 (vec_dot only: neither repacked nor in tinyBLAS): the same lanes over the unsigned
//     values, plus summs = fma(m, s, summs) (gcc contracts `summs += m * s`), result hsum8 + summs.
//   * IQ4_NL one row: two lane accumulators, even blocks into the first and odd into the second,
//     summed lane by lane before hsum8; an odd last block is added as float(sum) * dw * dx, a
//     separate multiply and add. (For a prompt, tinyBLAS would instead do Q4_0's order, one lane
//     accumulator and an fma per block; it only sees IQ4_NL matrices whose row count is not a
//     multiple of 8, since the others are repacked, so ponder keeps the one-row order for those.)
//   * Q4_0, IQ4_NL repacked 8 rows at a time: per block the exact sum of all 32 products, then
//     acc = fma(sum, dw * dx, acc).
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant_internal.h"

namespace ponder::quant {

namespace {

// a * b rounded on its own. A plain a * b that feeds an addition may be fused with it into one fma
// by the compiler (GCC contracts by default in C++); fma(a, b, 0) cannot be.
float mul_rounded(float a, float b) { return std::fma(a, b, 0.f); }

// The 32 nibbles of a 4-bit block in element order: low nibbles are elements 0..15, high 16..31.
void unpack_nibbles(const uint8_t qs[kQK / 2], int8_t q[kQK]) {
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = int8_t(qs[j] & 0x0F);
    q[j + kQK / 2] = int8_t(qs[j] >> 4);
  }
}

// The 5-bit values of a Q5 block: the nibble of element i plus bit i of qh (little-endian) as bit 4.
void unpack_q5(const uint8_t qs[kQK / 2], const uint8_t qh_bytes[4], int8_t q[kQK]) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, sizeof qh);
  unpack_nibbles(qs, q);
  for (int i = 0; i < kQK; ++i) q[i] = int8_t(q[i] | ((qh >> i) & 1) << 4);
}

void q4_0_values(const BlockQ4_0& b, int8_t q[kQK]) {
  unpack_nibbles(b.qs, q);
  for (int i = 0; i < kQK; ++i) q[i] = int8_t(q[i] - 8);
}

void q5_0_values(const BlockQ5_0& b, int8_t q[kQK]) {
  unpack_q5(b.qs, b.qh, q);
  for (int i = 0; i < kQK; ++i) q[i] = int8_t(q[i] - 16);
}

void iq4_nl_values(const BlockIQ4_NL& b, int8_t q[kQK]) {
  unpack_nibbles(b.qs, q);
  for (int i = 0; i < kQK; ++i) q[i] = kValuesIQ4NL[q[i]];
}

// acc[j] = fma(d, lane sum j, acc[j]) for the 8 lanes of one block (lane j: elements 4j..4j+3).
void fma_lanes(float acc[8], float d, const int8_t w[kQK], const int8_t x[kQK]) {
  for (int j = 0; j < 8; ++j) {
    int32_t s = 0;
    for (int i = 4 * j; i < 4 * j + 4; ++i) s += int32_t(w[i]) * int32_t(x[i]);
    acc[j] = std::fma(d, float(s), acc[j]);
  }
}

// The exact sum of a block's 32 products.
int32_t block_sum(const int8_t w[kQK], const int8_t x[kQK]) {
  int32_t s = 0;
  for (int i = 0; i < kQK; ++i) s += int32_t(w[i]) * int32_t(x[i]);
  return s;
}

}  // namespace

// ---- Q4_0: w = d * (q - 8) ----

void dequantize_q4_0(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(row);
  int8_t q[kQK];
  for (int64_t i = 0; i < K / kQK; ++i) {
    q4_0_values(b[i], q);
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) out[i * kQK + j] = d * float(q[j]);
  }
}

// ggml_vec_dot_q4_0_q8_0 (AVX2): acc[j] = fma(dw * dx, lane_j, acc[j]) block after block; hsum8.
float dot_q4_0(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ4_0*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc[8] = {};
  int8_t q[kQK];
  for (int64_t b = 0; b < K / kQK; ++b) {
    q4_0_values(wb[b], q);
    fma_lanes(acc, fp16_to_fp32(wb[b].d) * xb[b].d, q, xb[b].qs);
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
    acc = std::fma(float(block_sum(q, xb[b].qs)), fp16_to_fp32(wb[b].d) * xb[b].d, acc);
  }
  return acc;
}

// ---- Q4_1 and Q5_1: w = d * q + m, q 4 or 5 bits (unsigned) ----

// dequantize_row_q4_1 / q5_1: q * d + m, multiply and add rounded separately.
template <typename Block, typename Unpack>
void dequantize_with_min(float* out, const uint8_t* row, int64_t K, Unpack unpack) {
  const auto* b = reinterpret_cast<const Block*>(row);
  int8_t q[kQK];
  for (int64_t i = 0; i < K / kQK; ++i) {
    unpack(b[i], q);
    const float d = fp16_to_fp32(b[i].d), m = fp16_to_fp32(b[i].m);
    for (int j = 0; j < kQK; ++j) out[i * kQK + j] = mul_rounded(float(q[j]), d) + m;
  }
}

// ggml_vec_dot_q4_1_q8_1 and ggml_vec_dot_q5_1_q8_1 (AVX2): lanes over the unsigned values,
// acc[j] = fma(dw * dx, lane_j, acc[j]); summs = fma(m, s, summs) with s = fp16(dx * sum(qx))
// from quantize_row_q8_1; hsum8(acc) + summs.
template <typename Block, typename Unpack>
float dot_with_min(const uint8_t* w, const uint8_t* x, int64_t K, Unpack unpack) {
  const auto* wb = reinterpret_cast<const Block*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8_1*>(x);
  float acc[8] = {};
  float summs = 0;
  int8_t q[kQK];
  for (int64_t b = 0; b < K / kQK; ++b) {
    summs = std::fma(fp16_to_fp32(wb[b].m), xb[b].s, summs);
    unpack(wb[b], q);
    fma_lanes(acc, fp16_to_fp32(wb[b].d) * xb[b].d, q, xb[b].qs);
  }
  return hsum8(acc) + summs;
}

const auto unpack_q4_1 = [](const BlockQ4_1& b, int8_t* q) { unpack_nibbles(b.qs, q); };
const auto unpack_q5_1 = [](const BlockQ5_1& b, int8_t* q) { unpack_q5(b.qs, b.qh, q); };

void dequantize_q4_1(float* out, const uint8_t* row, int64_t K) { dequantize_with_min<BlockQ4_1>(out, row, K, unpack_q4_1); }
float dot_q4_1(const uint8_t* w, const uint8_t* x, int64_t K) { return dot_with_min<BlockQ4_1>(w, x, K, unpack_q4_1); }
void dequantize_q5_1(float* out, const uint8_t* row, int64_t K) { dequantize_with_min<BlockQ5_1>(out, row, K, unpack_q5_1); }
float dot_q5_1(const uint8_t* w, const uint8_t* x, int64_t K) { return dot_with_min<BlockQ5_1>(w, x, K, unpack_q5_1); }

// ---- Q5_0: w = d * (q - 16), q 5 bits ----

void dequantize_q5_0(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockQ5_0*>(row);
  int8_t q[kQK];
  for (int64_t i = 0; i < K / kQK; ++i) {
    q5_0_values(b[i], q);
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) out[i * kQK + j] = float(q[j]) * d;
  }
}

// ggml_vec_dot_q5_0_q8_0 (AVX2) and tinyBLAS_Q0_AVX<block_q5_0>: Q4_0's order over q - 16.
float dot_q5_0(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockQ5_0*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc[8] = {};
  int8_t q[kQK];
  for (int64_t b = 0; b < K / kQK; ++b) {
    q5_0_values(wb[b], q);
    fma_lanes(acc, fp16_to_fp32(wb[b].d) * xb[b].d, q, xb[b].qs);
  }
  return hsum8(acc);
}


// ---- IQ4_NL: w = d * kValuesIQ4NL[q] ----

void dequantize_iq4_nl(float* out, const uint8_t* row, int64_t K) {
  const auto* b = reinterpret_cast<const BlockIQ4_NL*>(row);
  int8_t q[kQK];
  for (int64_t i = 0; i < K / kQK; ++i) {
    iq4_nl_values(b[i], q);
    const float d = fp16_to_fp32(b[i].d);
    for (int j = 0; j < kQK; ++j) out[i * kQK + j] = d * float(q[j]);
  }
}

// ggml_vec_dot_iq4_nl_q8_0 (AVX2): blocks in pairs, the even block's lanes into acc[0], the odd
// block's into acc[1]; hsum8 of acc[0] + acc[1] lane by lane; an odd last block then adds
// float(sum) * (dx * dw) as a separate multiply and add.
float dot_iq4_nl(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockIQ4_NL*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  const int64_t nb = K / kQK;
  float acc[2][8] = {};
  int8_t q[kQK];
  int64_t b = 0;
  for (; b + 1 < nb; b += 2) {
    for (int k = 0; k < 2; ++k) {
      iq4_nl_values(wb[b + k], q);
      fma_lanes(acc[k], xb[b + k].d * fp16_to_fp32(wb[b + k].d), q, xb[b + k].qs);
    }
  }
  float lanes[8];
  for (int j = 0; j < 8; ++j) lanes[j] = acc[0][j] + acc[1][j];
  float sum = hsum8(lanes);
  if (b < nb) {
    iq4_nl_values(wb[b], q);
    sum += mul_rounded(float(block_sum(q, xb[b].qs)), xb[b].d * fp16_to_fp32(wb[b].d));
  }
  return sum;
}

// ggml_gemv/gemm_iq4_nl_8x8_q8_0: the repacked order of Q4_0 over the non-linear values.
float dot_x8_iq4_nl(const uint8_t* w, const uint8_t* x, int64_t K) {
  const auto* wb = reinterpret_cast<const BlockIQ4_NL*>(w);
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(x);
  float acc = 0;
  int8_t q[kQK];
  for (int64_t b = 0; b < K / kQK; ++b) {
    iq4_nl_values(wb[b], q);
    acc = std::fma(float(block_sum(q, xb[b].qs)), fp16_to_fp32(wb[b].d) * xb[b].d, acc);
  }
  return acc;
}

}  // namespace ponder::quant
