// Q2_K, Q3_K and IQ4_XS: dequantization of hand-made blocks against values worked out by hand,
// every dot product order against a float64 sum over the dequantized weights and activations,
// and a few products against llama.cpp's own results for the same bytes (bitwise).
#include <cmath>
#include <cstring>
#include <gtest/gtest.h>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "kernels/quant.h"
#include "kernels/quant_internal.h"

namespace ponder {
namespace {

constexpr uint16_t kHalf1 = 0x3C00, kHalf0_5 = 0x3800, kHalf0_25 = 0x3400;

template <typename Block>
std::vector<float> dequantize_block(GgmlType type, const Block& b) {
  std::vector<float> out(kQK_K);
  quant_type(type)->dequantize(out.data(), reinterpret_cast<const uint8_t*>(&b), kQK_K);
  return out;
}

TEST(QuantKLow, Q2KDequantizesByHand) {
  BlockQ2_K b{};
  b.d = kHalf1;
  b.dmin = kHalf0_5;
  // scales[j] = scale (low nibble) | min (high nibble) of the 16 weights 16j..16j+15
  b.scales[0] = 0x21, b.scales[1] = 0x03, b.scales[2] = 0x45, b.scales[6] = 0x17, b.scales[12] = 0xF2, b.scales[15] = 0x0F;
  // weight 128h + 32s + l is bits 2s..2s+1 of qs[32h + l]
  b.qs[0] = 0b00001110;   // weight 0: 2, weight 32: 3
  b.qs[17] = 0b01;        // weight 17: 1
  b.qs[4] = 0b11000000;   // weight 100 (s = 3, l = 4): 3
  b.qs[40] = 0b00100000;  // weight 200 (h = 1, s = 2, l = 8): 2
  b.qs[63] = 0b10000000;  // weight 255 (h = 1, s = 3, l = 31): 2
  const std::vector<float> w = dequantize_block(GgmlType::Q2_K, b);
  EXPECT_EQ(w[0], 1.0f * 1 * 2 - 0.5f * 2);
  EXPECT_EQ(w[1], -0.5f * 2);  // q = 0: only the min
  EXPECT_EQ(w[17], 1.0f * 3 * 1);
  EXPECT_EQ(w[32], 1.0f * 5 * 3 - 0.5f * 4);
  EXPECT_EQ(w[64], 0.0f);
  EXPECT_EQ(w[100], 1.0f * 7 * 3 - 0.5f * 1);
  EXPECT_EQ(w[200], 1.0f * 2 * 2 - 0.5f * 15);
  EXPECT_EQ(w[255], 1.0f * 15 * 2);
}

TEST(QuantKLow, Q3KDequantizesByHand) {
  BlockQ3_K b{};
  b.d = kHalf0_5;
  // Stored 6-bit scales (value + 32): s0 = 33, s5 = 20, s9 = 63, s14 = 0, every other 32 (value 0).
  // Low 4 bits of scale j: nibble j / 8 of scales[j % 8]; high 2 bits: bits 2(j / 4) of scales[8 + j % 4].
  b.scales[0] = 0x01;  // s0 low 1
  b.scales[5] = 0x04;  // s5 low 4
  b.scales[1] = 0xF0;  // s9 low 15
  b.scales[8] = 0xAA;  // high bits of s0, s4, s8, s12: 2 each
  b.scales[9] = 0xB6;  // of s1, s5, s9, s13: 2, 1, 3, 2
  b.scales[10] = 0x2A;  // of s2, s6, s10, s14: 2, 2, 2, 0
  b.scales[11] = 0xAA;  // of s3, s7, s11, s15: 2 each
  // Weight e: low 2 bits as in Q2_K, minus 4 unless bit e / 32 of hmask[e % 32] is set.
  b.qs[0] = 0x03, b.hmask[0] = 0x01;  // weight 0: 3
  b.qs[16] = 0x10;                    // weight 80 (s = 2, l = 16): 1 - 4
  b.qs[54] = 0x02, b.hmask[22] = 0x10;  // weight 150 (h = 1, s = 0, l = 22): 2
  b.qs[38] = 0x40, b.hmask[6] = 0x80;   // weight 230 (h = 1, s = 3, l = 6): 1
  const std::vector<float> w = dequantize_block(GgmlType::Q3_K, b);
  EXPECT_EQ(w[0], 0.5f * 1 * 3);
  EXPECT_EQ(w[1], 0.5f * 1 * -4);
  EXPECT_EQ(w[40], 0.0f);  // scale 0
  EXPECT_EQ(w[80], 0.5f * -12 * -3);
  EXPECT_EQ(w[150], 0.5f * 31 * 2);
  EXPECT_EQ(w[230], 0.5f * -32 * 1);
}

TEST(QuantKLow, IQ4XSDequantizesByHand) {
  BlockIQ4_XS b{};
  b.d = kHalf0_25;
  // Stored 6-bit scales of the 8 sub-blocks of 32 (value + 32): 33, 32, 32, 40, 32, 32, 10, 63.
  b.scales_l[0] = 0x01;  // low 4 bits: nibble ib % 2 of scales_l[ib / 2]
  b.scales_l[1] = 0x80;
  b.scales_l[3] = 0xFA;
  b.scales_h = 0xCAAA;  // high 2 bits of sub-block ib at bits 2ib: 2, 2, 2, 2, 2, 2, 0, 3
  // In sub-block ib, qs[16ib + j] holds weight 32ib + j (low nibble) and 32ib + j + 16 (high).
  b.qs[0] = 0xF0;    // weight 0: index 0 (-127), weight 16: index 15 (113)
  b.qs[53] = 0x09;   // weight 101: index 9 (13)
  b.qs[100] = 0x30;  // weight 212: index 3 (-65)
  b.qs[127] = 0x80;  // weight 255: index 8 (1)
  const std::vector<float> w = dequantize_block(GgmlType::IQ4_XS, b);
  EXPECT_EQ(w[0], 0.25f * 1 * -127);
  EXPECT_EQ(w[16], 0.25f * 1 * 113);
  EXPECT_EQ(w[40], 0.0f);
  EXPECT_EQ(w[101], 0.25f * 8 * 13);
  EXPECT_EQ(w[212], 0.25f * -22 * -65);
  EXPECT_EQ(w[255], 0.25f * 31 * 1);
}

// Deterministic inputs (raw mt19937 output, so the same bytes on every platform): weight rows of
// random bytes with fixed scales, and activations in [-scale, scale) quantized to Q8_K.
std::vector<uint8_t> random_row(GgmlType type, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> row(size_t(ggml_row_size(type, K)));
  for (uint8_t& v : row) v = uint8_t(rng() >> 24);
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    const uint16_t d = fp32_to_fp16(0.01f * float(b + 1)), dmin = fp32_to_fp16(0.003f * float(b + 2));
    uint8_t* blk = row.data() + b * int64_t(row.size()) / (K / kQK_K);
    if (type == GgmlType::Q2_K) {
      auto* q = reinterpret_cast<BlockQ2_K*>(blk);
      q->d = d, q->dmin = dmin;
    } else if (type == GgmlType::Q3_K) {
      reinterpret_cast<BlockQ3_K*>(blk)->d = d;
    } else {
      reinterpret_cast<BlockIQ4_XS*>(blk)->d = d;
    }
  }
  return row;
}

std::vector<uint8_t> random_acts(int64_t K, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::vector<float> x(static_cast<size_t>(K));
  for (float& v : x) v = scale * (float(rng() >> 8) / 8388608.f - 1.f);
  std::vector<uint8_t> out(size_t(activation_row_bytes(GgmlType::Q8_K, K)));
  quantize_activation_row(out.data(), x.data(), K, GgmlType::Q8_K);
  return out;
}

// sum_k w_k x_k in float64 over the dequantized weights and activations (x = d * q), and the
// same sum of |w_k x_k| for the tolerance.
void ref_dot(GgmlType type, const uint8_t* w, const uint8_t* x, int64_t K, double& sum, double& abs_sum) {
  std::vector<float> wf(static_cast<size_t>(K));
  quant_type(type)->dequantize(wf.data(), w, K);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(x);
  sum = abs_sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    const double p = double(wf[size_t(k)]) * double(xb[k / kQK_K].d) * double(xb[k / kQK_K].qs[k % kQK_K]);
    sum += p;
    abs_sum += std::fabs(p);
  }
}

class QuantKLowDot : public ::testing::TestWithParam<GgmlType> {};

TEST_P(QuantKLowDot, EveryOrderMatchesFloat64) {
  const GgmlType type = GetParam();
  const QuantType* q = quant_type(type);
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->partner, GgmlType::Q8_K);
  EXPECT_EQ(q->dot_x8 != nullptr, type == GgmlType::Q2_K);  // llama.cpp repacks only Q2_K of these on x86
  for (int64_t K : {256, 768, 2048}) {
    for (uint32_t seed = 1; seed <= 4; ++seed) {
      const std::vector<uint8_t> w = random_row(type, K, seed);
      const std::vector<uint8_t> x = random_acts(K, 100 + seed, seed % 2 ? 3.f : 0.02f);
      double sum = 0, abs_sum = 0;
      ref_dot(type, w.data(), x.data(), K, sum, abs_sum);
      const double tol = 1e-6 * abs_sum + 1e-30;
      EXPECT_NEAR(q->dot(w.data(), x.data(), K), sum, tol) << "K " << K << " seed " << seed;
      if (type == GgmlType::Q2_K) {
        EXPECT_NEAR(quant::dot_x8_q2_k(w.data(), x.data(), K), sum, tol) << "K " << K << " seed " << seed;
        EXPECT_NEAR(quant::dot_x8_q2_k_gemm(w.data(), x.data(), K), sum, tol) << "K " << K << " seed " << seed;
      }
      if (type == GgmlType::IQ4_XS) {
        EXPECT_NEAR(quant::dot_x8_iq4_xs(w.data(), x.data(), K), sum, tol) << "K " << K << " seed " << seed;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(QuantKLow, QuantKLowDot, ::testing::Values(GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_XS),
                         [](const auto& info) { return std::string(ggml_type_name(uint32_t(info.param))); });

// llama.cpp 0.5.0's own results (libggml, AVX-512 x86) for K = 512, weight row
// random_row(type, 512, row_seed) and activations random_acts(512, act_seed, odd seed ? 3 : 0.02):
// ggml_vec_dot (one-row); for Q2_K also the repacked gemv (a product over 1 token) and gemm (the
// first tokens of a product over 8); for IQ4_XS the IQ panel kernels (a product over 8 tokens).
// Each case was chosen so that the orders give different last bits.
struct Golden {
  GgmlType type;
  uint32_t row_seed, act_seed;
  float one_row, x8, x8_gemm;  // x8: Q2_K gemv or IQ4_XS panel; x8_gemm: Q2_K gemm
};

constexpr Golden kGolden[] = {
    {GgmlType::Q2_K, 3, 101, -0x1.b120bp-1f, -0x1.b120aap-1f, -0x1.b120a6p-1f},
    {GgmlType::Q2_K, 1, 108, -0x1.b7d0eep-7f, -0x1.b7d0fp-7f, -0x1.b7d0f4p-7f},
    {GgmlType::Q2_K, 5, 105, -0x1.292b4cp+0f, -0x1.292b5p+0f, -0x1.292b48p+0f},
    {GgmlType::Q3_K, 2, 101, -0x1.bd75b4p+4f, 0, 0},
    {GgmlType::Q3_K, 3, 102, -0x1.1eb26cp-2f, 0, 0},
    {GgmlType::Q3_K, 6, 103, -0x1.c9954cp+5f, 0, 0},
    {GgmlType::IQ4_XS, 4, 101, -0x1.5480cp+5f, -0x1.54811cp+5f, 0},
    {GgmlType::IQ4_XS, 1, 102, 0x1.19d946p+1f, 0x1.19d944p+1f, 0},
    {GgmlType::IQ4_XS, 6, 101, -0x1.bc23eep+8f, -0x1.bc23fp+8f, 0},
};

TEST(QuantKLow, BitwiseEqualToLlamaCpp) {
  constexpr int64_t K = 512;
  for (const Golden& g : kGolden) {
    SCOPED_TRACE(ggml_type_name(uint32_t(g.type)) + " row " + std::to_string(g.row_seed) + " act " +
                 std::to_string(g.act_seed));
    const std::vector<uint8_t> w = random_row(g.type, K, g.row_seed);
    const std::vector<uint8_t> x = random_acts(K, g.act_seed, g.act_seed % 2 ? 3.f : 0.02f);
    EXPECT_EQ(quant_type(g.type)->dot(w.data(), x.data(), K), g.one_row);
    if (g.type == GgmlType::Q2_K) {
      EXPECT_EQ(quant::dot_x8_q2_k(w.data(), x.data(), K), g.x8);
      EXPECT_EQ(quant::dot_x8_q2_k_gemm(w.data(), x.data(), K), g.x8_gemm);
    }
    if (g.type == GgmlType::IQ4_XS) {
      EXPECT_EQ(quant::dot_x8_iq4_xs(w.data(), x.data(), K), g.x8);
    }
  }
}

}  // namespace
}  // namespace ponder
