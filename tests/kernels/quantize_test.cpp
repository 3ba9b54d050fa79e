// The legacy and IQ4 weight quantizers (kernels/quantize_legacy.cpp) on hand-made rows whose
// blocks follow from the formats' rules on paper: scales that are powers of two or ratios of small
// integers, values on the quantization grid, ties that tell llama.cpp's rounding from others.
// (Byte identity with llama-quantize on whole models: tests/model/quantize_model_test.cpp.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <gtest/gtest.h>
#include <random>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/quant.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize.h"

namespace ponder {
namespace {

template <typename Block>
std::vector<Block> quantize_blocks(GgmlType type, const std::vector<float>& x) {
  std::vector<Block> out(x.size() / size_t(ggml_block_size(type)));
  static_assert(std::is_trivially_copyable_v<Block>);
  quantize_row(reinterpret_cast<uint8_t*>(out.data()), x.data(), int64_t(x.size()), type);
  return out;
}

std::vector<float> dequantize(GgmlType type, const void* blocks, int64_t K) {
  std::vector<float> out(static_cast<size_t>(K));
  quant_type(type)->dequantize(out.data(), static_cast<const uint8_t*>(blocks), K);
  return out;
}

// Nibble j of a 32-block: element j in the low nibble of byte j, element j + 16 in the high one.
int nibble(const uint8_t qs[16], int j) { return j < 16 ? qs[j] & 0xf : qs[j - 16] >> 4; }

// x = j - 16: the largest magnitude is x[0] = -16, so d = -16 / -8 = 2 and q = trunc(x / 2 + 8.5),
// i.e. (j + 1) / 2, capped at 15 (x[31] = 15 would need 16).
TEST(QuantizeRow, Q4_0Ramp) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j - 16);
  const auto b = quantize_blocks<BlockQ4_0>(GgmlType::Q4_0, x);
  EXPECT_EQ(b[0].d, fp32_to_fp16(2.0f));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(nibble(b[0].qs, j), std::min(15, (j + 1) / 2)) << j;
}

// A zero block: d = 0 / -8, which is -0 (fp16 0x8000, as in llama.cpp's files), every quant 8
// (the value 0).
TEST(QuantizeRow, Q4_0ZeroBlock) {
  const auto b = quantize_blocks<BlockQ4_0>(GgmlType::Q4_0, std::vector<float>(64, 0.f));
  for (const BlockQ4_0& blk : b) {
    EXPECT_EQ(blk.d, 0x8000);
    for (uint8_t q : blk.qs) EXPECT_EQ(q, 0x88);
  }
}

// min -3, max 12: d = 15 / 15 = 1, m = -3, q = trunc(x + 3 + 0.5) = x + 3.
TEST(QuantizeRow, Q4_1OnTheGrid) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(std::min(j, 15) - 3);
  const auto b = quantize_blocks<BlockQ4_1>(GgmlType::Q4_1, x);
  EXPECT_EQ(b[0].d, fp32_to_fp16(1.0f));
  EXPECT_EQ(b[0].m, fp32_to_fp16(-3.0f));
  for (int j = 0; j < 32; ++j) EXPECT_EQ(nibble(b[0].qs, j), std::min(j, 15)) << j;
  EXPECT_EQ(dequantize(GgmlType::Q4_1, b.data(), 32), x);
}

// x = (j - 16) / 4: d = -4 / -16 = 0.25, q = trunc(x * 4 + 16.5) = j, so bit 4 is set from j = 16 on.
TEST(QuantizeRow, Q5_0OnTheGrid) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j - 16) / 4;
  const auto b = quantize_blocks<BlockQ5_0>(GgmlType::Q5_0, x);
  EXPECT_EQ(b[0].d, fp32_to_fp16(0.25f));
  uint32_t qh;
  std::memcpy(&qh, b[0].qh, 4);
  EXPECT_EQ(qh, 0xFFFF0000u);
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b[0].qs[j], uint8_t(j | j << 4)) << j;
  // The top value 15 / 4 is 31 quants up (q = 31), the bottom -4 is 0.
  EXPECT_EQ(dequantize(GgmlType::Q5_0, b.data(), 32), x);
}

// 100 + j: d = 31 / 31 = 1, m = 100, q = j (5 bits, no clamp needed).
TEST(QuantizeRow, Q5_1OnTheGrid) {
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(100 + 31 - j);
  const auto b = quantize_blocks<BlockQ5_1>(GgmlType::Q5_1, x);
  EXPECT_EQ(b[0].d, fp32_to_fp16(1.0f));
  EXPECT_EQ(b[0].m, fp32_to_fp16(100.0f));
  uint32_t qh;
  std::memcpy(&qh, b[0].qh, 4);
  EXPECT_EQ(qh, 0x0000FFFFu);  // q = 31 - j: bit 4 set for j < 16
  for (int j = 0; j < 32; ++j) EXPECT_EQ(nibble(b[0].qs, j), (31 - j) & 15) << j;
  EXPECT_EQ(dequantize(GgmlType::Q5_1, b.data(), 32), x);
}

// max |x| = 127: d = 1, q = roundf(x): halves go away from zero (2.5 -> 3, -2.5 -> -3, 0.5 -> 1),
// which tells llama-quantize's reference rounding from the activation quantizer's half-to-even.
TEST(QuantizeRow, Q8_0RoundsHalvesAwayFromZero) {
  std::vector<float> x(32, 0.f);
  x[0] = 127.f, x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = 1.5f, x[5] = -0.5f, x[6] = 3.49f, x[7] = -127.f;
  const auto b = quantize_blocks<BlockQ8_0>(GgmlType::Q8_0, x);
  EXPECT_EQ(b[0].d, fp32_to_fp16(1.0f));
  const int8_t want[8] = {127, 3, -3, 1, 2, -1, 3, -127};
  for (int j = 0; j < 8; ++j) EXPECT_EQ(b[0].qs[j], want[j]) << j;
  for (int j = 8; j < 32; ++j) EXPECT_EQ(b[0].qs[j], 0) << j;
  BlockQ8_0 act;
  quantize_row_q8_0(&act, x.data(), 32);
  EXPECT_EQ(act.qs[1], 2) << "the activation quantizer rounds half to even";
}

// Values on the IQ4 grid times 1/64: the exact fit d = 1/64 wins the scale search (every other
// trial scale reconstructs worse), and the indices are the grid positions.
TEST(QuantizeRow, IQ4_NLOnTheGrid) {
  std::vector<float> x(64);
  for (int j = 0; j < 64; ++j) x[size_t(j)] = float(kValuesIQ4NL[(j * 7 + j / 32) % 16]) / 64;
  const auto b = quantize_blocks<BlockIQ4_NL>(GgmlType::IQ4_NL, x);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(b[size_t(i)].d, fp32_to_fp16(1.0f / 64)) << i;
    for (int j = 0; j < 32; ++j) EXPECT_EQ(nibble(b[size_t(i)].qs, j), (((32 * i + j) * 7 + i) % 16)) << i << " " << j;
  }
  EXPECT_EQ(dequantize(GgmlType::IQ4_NL, b.data(), 64), x);
}

// IQ4_NL of a zero block: d = 0 and every index 8 (kValuesIQ4NL[8] = 1 is the value nearest 0 from
// above; -10 and 1 are not equally near).
TEST(QuantizeRow, IQ4_NLZeroBlock) {
  const auto b = quantize_blocks<BlockIQ4_NL>(GgmlType::IQ4_NL, std::vector<float>(32, 0.f));
  EXPECT_EQ(b[0].d, 0);
  for (uint8_t q : b[0].qs) EXPECT_EQ(q, 0x88);
}

// Block ib of 32 on the grid times (ib + 1) / 64. The block scales are found exactly; the largest,
// 8/64, sets d = -(1/8) / 32 = -1/256, so block ib's 6-bit scale is -4 (ib + 1), stored + 32:
// 28, 24, ..., 0. Every value comes back exactly.
TEST(QuantizeRow, IQ4_XSOnTheGrid) {
  std::vector<float> x(256);
  for (int ib = 0; ib < 8; ++ib)
    for (int j = 0; j < 32; ++j) x[size_t(32 * ib + j)] = float(kValuesIQ4NL[(j + ib) % 16]) * float(ib + 1) / 64;
  const auto b = quantize_blocks<BlockIQ4_XS>(GgmlType::IQ4_XS, x);
  EXPECT_EQ(b[0].d, fp32_to_fp16(-1.0f / 256));
  for (int ib = 0; ib < 8; ++ib) {
    const int ls = (b[0].scales_l[ib / 2] >> 4 * (ib % 2) & 0xf) | (b[0].scales_h >> 2 * ib & 3) << 4;
    EXPECT_EQ(ls, 32 - 4 * (ib + 1)) << ib;
    for (int j = 0; j < 32; ++j) EXPECT_EQ(nibble(b[0].qs + 16 * ib, j), (j + ib) % 16) << ib << " " << j;
  }
  EXPECT_EQ(dequantize(GgmlType::IQ4_XS, b.data(), 256), x);
}

// Random rows: each value comes back within half a quantization step (a whole one for Q4_0 and
// Q5_0, whose grid stops one step short on the side opposite the largest magnitude), plus the fp16
// rounding of the scales; the relative squared error is what 4, 5 and 8 bits give.
TEST(QuantizeRow, RandomRowsReconstructWithinAStep) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> x(1024);
  for (float& v : x) v = normal(rng);
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                        GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
    SCOPED_TRACE(ggml_type_name(uint32_t(type)));
    std::vector<uint8_t> q(size_t(ggml_row_size(type, 1024)));
    quantize_row(q.data(), x.data(), 1024, type);
    const std::vector<float> y = dequantize(type, q.data(), 1024);
    double err = 0, sum = 0;
    for (size_t i = 0; i < x.size(); ++i) err += double(x[i] - y[i]) * (x[i] - y[i]), sum += double(x[i]) * x[i];
    const bool q8 = type == GgmlType::Q8_0, q5 = type == GgmlType::Q5_0 || type == GgmlType::Q5_1;
    EXPECT_LT(err / sum, q8 ? 1e-4 : q5 ? 3e-3 : 2e-2);
    if (type == GgmlType::IQ4_NL || type == GgmlType::IQ4_XS) continue;  // non-linear grid
    for (size_t b = 0; b < x.size() / 32; ++b) {
      float lo = x[32 * b], hi = x[32 * b];
      for (size_t j = 0; j < 32; ++j) lo = std::min(lo, x[32 * b + j]), hi = std::max(hi, x[32 * b + j]);
      const float amax = std::max(-lo, hi);
      const float step = type == GgmlType::Q4_0 ? amax / 8 : type == GgmlType::Q5_0 ? amax / 16
                       : type == GgmlType::Q8_0 ? amax / 127 : (hi - lo) / (type == GgmlType::Q4_1 ? 15 : 31);
      const float steps = type == GgmlType::Q4_0 || type == GgmlType::Q5_0 ? 1.0f : 0.5f;
      for (size_t j = 0; j < 32; ++j)
        EXPECT_LE(std::fabs(x[32 * b + j] - y[32 * b + j]), step * (steps + 0.1f) + 1e-3f * amax) << b << " " << j;
    }
  }
}

TEST(QuantizeRow, BadTypeOrLengthThrows) {
  std::vector<float> x(64, 1.f);
  std::vector<uint8_t> out(1024);
  EXPECT_THROW(quantize_row(out.data(), x.data(), 48, GgmlType::Q4_0), InvalidArgument);
  EXPECT_THROW(quantize_row(out.data(), x.data(), 64, GgmlType::IQ4_XS), InvalidArgument);
  EXPECT_THROW(quantize_row(out.data(), x.data(), 64, GgmlType::F16), InvalidArgument);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                     GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS})
    EXPECT_TRUE(can_quantize(t)) << ggml_type_name(uint32_t(t));
  for (GgmlType t : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_1, GgmlType::Q8_K})
    EXPECT_FALSE(can_quantize(t)) << ggml_type_name(uint32_t(t));
}

}  // namespace
}  // namespace ponder
