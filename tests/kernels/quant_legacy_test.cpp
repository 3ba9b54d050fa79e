// Q4_1, Q5_0, Q5_1 and IQ4_NL (kernels/quant_legacy.cpp): dequantization of hand-made blocks
// against the format's formula, each dot product against a float64 sum over the dequantized
// weights and activations, and bitwise against llama.cpp's order restated here over the raw block
// bytes (arch/x86/quants.c and repack.cpp on AVX2/AVX-512).
#include <cmath>
#include <cstring>
#include <gtest/gtest.h>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder {
namespace {

// The IQ4_NL table as the format defines it (ggml-common.h kvalues_iq4nl).
constexpr int kIQ4[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

std::vector<float> dequantize(GgmlType type, const std::vector<uint8_t>& row, int64_t K) {
  std::vector<float> out(static_cast<size_t>(K));
  quant_type(type)->dequantize(out.data(), row.data(), K);
  return out;
}

template <typename Block>
std::vector<uint8_t> bytes_of(const Block& b) {
  std::vector<uint8_t> v(sizeof b);
  std::memcpy(v.data(), &b, sizeof b);
  return v;
}

TEST(QuantLegacyDequantize, Q4_1HandMadeBlock) {
  BlockQ4_1 b;
  b.d = fp32_to_fp16(0.5f);
  b.m = fp32_to_fp16(-1.0f);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (15 - j) << 4);  // element j: j, element j + 16: 15 - j
  const auto w = dequantize(GgmlType::Q4_1, bytes_of(b), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(w[size_t(j)], 0.5f * float(j) - 1.0f) << j;
    EXPECT_EQ(w[size_t(j + 16)], 0.5f * float(15 - j) - 1.0f) << j + 16;
  }
}

TEST(QuantLegacyDequantize, Q5_0HandMadeBlock) {
  BlockQ5_0 b;
  b.d = fp32_to_fp16(0.25f);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (15 - j) << 4);
  // qh as a little-endian uint32: bits 0, 3, 16 and 31 set -> elements 0, 3, 16 and 31 get +16.
  b.qh[0] = 0x09;
  b.qh[1] = 0x00;
  b.qh[2] = 0x01;
  b.qh[3] = 0x80;
  const auto w = dequantize(GgmlType::Q5_0, bytes_of(b), 32);
  for (int i = 0; i < 32; ++i) {
    const int nibble = i < 16 ? i : 15 - (i - 16);
    const int high = (i == 0 || i == 3 || i == 16 || i == 31) ? 16 : 0;
    EXPECT_EQ(w[size_t(i)], 0.25f * float(nibble + high - 16)) << i;
  }
  EXPECT_EQ(w[0], 0.0f);       // 0 + 16 - 16
  EXPECT_EQ(w[1], -3.75f);     // 1 - 16
  EXPECT_EQ(w[31], 0.0f);      // 0 + 16 - 16 (high nibble of qs[15] is 0)
  EXPECT_EQ(w[16], 3.75f);     // 15 + 16 - 16
}

TEST(QuantLegacyDequantize, Q5_1HandMadeBlock) {
  BlockQ5_1 b;
  b.d = fp32_to_fp16(2.0f);
  b.m = fp32_to_fp16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (15 - j) << 4);
  b.qh[0] = 0x00;
  b.qh[1] = 0x80;  // bit 15
  b.qh[2] = 0x00;
  b.qh[3] = 0x40;  // bit 30
  const auto w = dequantize(GgmlType::Q5_1, bytes_of(b), 32);
  for (int i = 0; i < 32; ++i) {
    const int nibble = i < 16 ? i : 15 - (i - 16);
    const int high = (i == 15 || i == 30) ? 16 : 0;
    EXPECT_EQ(w[size_t(i)], 2.0f * float(nibble + high) + 0.5f) << i;
  }
  EXPECT_EQ(w[15], 62.5f);  // (15 + 16) * 2 + 0.5
  EXPECT_EQ(w[30], 34.5f);  // (1 + 16) * 2 + 0.5
}

TEST(QuantLegacyDequantize, IQ4_NLHandMadeBlock) {
  for (int i = 0; i < 16; ++i) EXPECT_EQ(int(kValuesIQ4NL[i]), kIQ4[i]);
  BlockIQ4_NL b;
  b.d = fp32_to_fp16(1.0f / 64);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | (15 - j) << 4);
  const auto w = dequantize(GgmlType::IQ4_NL, bytes_of(b), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(w[size_t(j)], float(kIQ4[j]) / 64) << j;
    EXPECT_EQ(w[size_t(j + 16)], float(kIQ4[15 - j]) / 64) << j + 16;
  }
}

// Two blocks in a row: the second block's values come from the second block.
TEST(QuantLegacyDequantize, SecondBlockOfARow) {
  BlockQ5_1 b[2] = {};
  b[0].d = fp32_to_fp16(1.0f);
  b[1].d = fp32_to_fp16(3.0f);
  b[1].m = fp32_to_fp16(-2.0f);
  b[1].qs[4] = 0x21;  // element 4: 1, element 20: 2
  b[1].qh[2] = 0x10;  // bit 20
  std::vector<uint8_t> row(sizeof b);
  std::memcpy(row.data(), b, sizeof b);
  const auto w = dequantize(GgmlType::Q5_1, row, 64);
  EXPECT_EQ(w[32 + 4], 3.0f * 1 - 2.0f);
  EXPECT_EQ(w[32 + 20], 3.0f * 18 - 2.0f);
  EXPECT_EQ(w[32 + 5], -2.0f);
  EXPECT_EQ(w[5], 0.0f);
}

// Q8_1 activations (the partner of Q4_1 and Q5_1), as llama.cpp's x86 quantize_row_q8_1:
// Q8_0's quants and d, and s = fp16(d * sum(q)) with d unrounded.
TEST(QuantLegacyQ8_1, HandComputedBlock) {
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = float(i) - 15.5f;
  x[31] = 254.f;  // amax 254 -> d = 2, q = round-half-even(x / 2)
  ActBlockQ8_1 a;
  quantize_activation_row(reinterpret_cast<uint8_t*>(&a), x, 32, GgmlType::Q8_1);
  EXPECT_EQ(a.d, 2.0f);
  EXPECT_EQ(a.qs[0], -8);  // -7.75 -> -8
  EXPECT_EQ(a.qs[2], -7);  // -6.75 -> -7
  EXPECT_EQ(a.qs[31], 127);
  int sum = 0;
  for (int i = 0; i < 32; ++i) sum += a.qs[i];
  EXPECT_EQ(a.s, fp16_to_fp32(fp32_to_fp16(2.0f * float(sum))));
}

// ---- dot products ----

struct TypeInfo {
  GgmlType type;
  int block_bytes;
  bool has_min;  // Q4_1, Q5_1: an fp16 m after d
};

constexpr TypeInfo kTypes[] = {{GgmlType::Q4_1, 20, true},
                               {GgmlType::Q5_0, 22, false},
                               {GgmlType::Q5_1, 24, true},
                               {GgmlType::IQ4_NL, 18, false}};

uint16_t read_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// Random blocks: random quant bytes, fp16 scales of a realistic size.
std::vector<uint8_t> random_row(const TypeInfo& t, int64_t K, std::mt19937& rng) {
  std::vector<uint8_t> row(size_t(K / 32 * t.block_bytes));
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& b : row) b = uint8_t(byte(rng));
  for (int64_t b = 0; b < K / 32; ++b) {
    uint8_t* p = row.data() + b * t.block_bytes;
    const uint16_t d = fp32_to_fp16(0.01f * nd(rng)), m = fp32_to_fp16(0.05f * nd(rng));
    std::memcpy(p, &d, 2);
    if (t.has_min) std::memcpy(p + 2, &m, 2);
  }
  return row;
}

// The quantized activation row (the type's partner) of K random floats.
std::vector<uint8_t> random_acts(GgmlType partner, int64_t K, std::mt19937& rng) {
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(K));
  for (auto& v : x) v = nd(rng);
  std::vector<uint8_t> a(size_t(activation_row_bytes(partner, K)));
  quantize_activation_row(a.data(), x.data(), K, partner);
  return a;
}

// The activation partner's values and scale of element k (as the dot products see them).
int8_t act_q(GgmlType partner, const std::vector<uint8_t>& a, int64_t k) {
  if (partner == GgmlType::Q8_0) return reinterpret_cast<const ActBlockQ8*>(a.data())[k / 32].qs[k % 32];
  return reinterpret_cast<const ActBlockQ8_1*>(a.data())[k / 32].qs[k % 32];
}
float act_d(GgmlType partner, const std::vector<uint8_t>& a, int64_t b) {
  if (partner == GgmlType::Q8_0) return reinterpret_cast<const ActBlockQ8*>(a.data())[b].d;
  return reinterpret_cast<const ActBlockQ8_1*>(a.data())[b].d;
}
float act_s(const std::vector<uint8_t>& a, int64_t b) { return reinterpret_cast<const ActBlockQ8_1*>(a.data())[b].s; }

// Element i (0..31) of a block read straight from its bytes, as llama.cpp's kernels widen it
// (unsigned for Q4_1/Q5_1, which carry the offset in m).
int value(const TypeInfo& t, const uint8_t* blk, int i) {
  switch (t.type) {
    case GgmlType::Q4_1: return i < 16 ? blk[4 + i] & 15 : blk[4 + i - 16] >> 4;
    case GgmlType::IQ4_NL: return kIQ4[i < 16 ? blk[2 + i] & 15 : blk[2 + i - 16] >> 4];
    default: {
      const int off = t.has_min ? 4 : 2;  // qh after d (and m)
      const uint32_t qh = uint32_t(blk[off]) | uint32_t(blk[off + 1]) << 8 | uint32_t(blk[off + 2]) << 16 |
                          uint32_t(blk[off + 3]) << 24;
      const uint8_t* qs = blk + off + 4;
      const int q = (i < 16 ? qs[i] & 15 : qs[i - 16] >> 4) | int((qh >> i) & 1) << 4;
      return t.has_min ? q : q - 16;
    }
  }
}

// llama.cpp's AVX2 ggml_vec_dot_<type>_<partner>, restated: 8 float lane accumulators (lane j:
// elements 4j..4j+3 of each block) updated with fma(dw * dx, lane sum, acc); IQ4_NL keeps two sets
// (even / odd blocks) added lane by lane at the end and does an odd last block as a separate
// multiply and add; the _1 types add the fma-accumulated sum of m * s after the lanes' hsum.
float llama_vec_dot(const TypeInfo& t, const std::vector<uint8_t>& w, const std::vector<uint8_t>& a, int64_t K) {
  const GgmlType partner = quant_type(t.type)->partner;
  const int64_t nb = K / 32;
  const bool pairs = t.type == GgmlType::IQ4_NL;
  const int64_t nb_lanes = pairs ? nb / 2 * 2 : nb;
  float acc[2][8] = {};
  float summs = 0;
  for (int64_t b = 0; b < nb_lanes; ++b) {
    const uint8_t* blk = w.data() + b * t.block_bytes;
    const float dd = fp16_to_fp32(read_u16(blk)) * act_d(partner, a, b);
    if (t.has_min) summs = std::fma(fp16_to_fp32(read_u16(blk + 2)), act_s(a, b), summs);
    for (int j = 0; j < 8; ++j) {
      int lane = 0;
      for (int i = 4 * j; i < 4 * j + 4; ++i) lane += value(t, blk, i) * act_q(partner, a, b * 32 + i);
      acc[pairs ? b % 2 : 0][j] = std::fma(dd, float(lane), acc[pairs ? b % 2 : 0][j]);
    }
  }
  float l[8];
  for (int j = 0; j < 8; ++j) l[j] = acc[0][j] + acc[1][j];
  float sum = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
  if (nb_lanes < nb) {
    const uint8_t* blk = w.data() + nb_lanes * t.block_bytes;
    int s = 0;
    for (int i = 0; i < 32; ++i) s += value(t, blk, i) * act_q(partner, a, nb_lanes * 32 + i);
    const volatile float p = float(s) * (fp16_to_fp32(read_u16(blk)) * act_d(partner, a, nb_lanes));
    sum = sum + p;
  }
  return t.has_min ? sum + summs : sum;
}

// llama.cpp's ggml_gemv/gemm_iq4_nl_8x8_q8_0, restated: one float accumulator per output,
// acc = fma(exact block sum, dw * dx, acc).
float llama_repacked_dot(const TypeInfo& t, const std::vector<uint8_t>& w, const std::vector<uint8_t>& a, int64_t K) {
  float acc = 0;
  for (int64_t b = 0; b < K / 32; ++b) {
    const uint8_t* blk = w.data() + b * t.block_bytes;
    int s = 0;
    for (int i = 0; i < 32; ++i) s += value(t, blk, i) * act_q(GgmlType::Q8_0, a, b * 32 + i);
    acc = std::fma(float(s), fp16_to_fp32(read_u16(blk)) * act_d(GgmlType::Q8_0, a, b), acc);
  }
  return acc;
}

class QuantLegacyDot : public ::testing::TestWithParam<TypeInfo> {};

TEST_P(QuantLegacyDot, MatchesFloat64AndLlamaCppOrder) {
  const TypeInfo t = GetParam();
  const QuantType* q = quant_type(t.type);
  ASSERT_NE(q, nullptr);
  std::mt19937 rng(uint32_t(t.type) + 11);
  for (int64_t K : {32, 64, 352, 384, 1024}) {  // 352: 11 blocks, an odd count
    for (int rep = 0; rep < 20; ++rep) {
      const auto w = random_row(t, K, rng);
      const auto a = random_acts(q->partner, K, rng);
      const float got = q->dot(w.data(), a.data(), K);

      // float64 over the dequantized weights and the activation values. Q8_1's s is d * sum(q)
      // rounded to fp16: its error is allowed for.
      std::vector<float> wf(static_cast<size_t>(K));
      q->dequantize(wf.data(), w.data(), K);
      double want = 0, mag = 0, s_err = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double term = double(wf[size_t(k)]) * act_d(q->partner, a, k / 32) * act_q(q->partner, a, k);
        want += term;
        mag += std::fabs(term);
      }
      if (t.has_min)
        for (int64_t b = 0; b < K / 32; ++b)
          s_err += std::fabs(fp16_to_fp32(read_u16(w.data() + b * t.block_bytes + 2)) * act_s(a, b)) * 1e-3;
      EXPECT_NEAR(got, want, 1e-5 * mag + s_err + 1e-7) << "K=" << K << " rep=" << rep;

      EXPECT_EQ(fp32_to_bits(got), fp32_to_bits(llama_vec_dot(t, w, a, K))) << "K=" << K << " rep=" << rep;
      if (q->dot_x8) {
        const float got8 = q->dot_x8(w.data(), a.data(), K);
        EXPECT_NEAR(got8, want, 1e-5 * mag + 1e-7) << "K=" << K << " rep=" << rep;
        EXPECT_EQ(fp32_to_bits(got8), fp32_to_bits(llama_repacked_dot(t, w, a, K))) << "K=" << K << " rep=" << rep;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Types, QuantLegacyDot, ::testing::ValuesIn(kTypes), [](const auto& info) {
  return std::string(ggml_type_name(uint32_t(info.param.type)));
});

// Which types llama.cpp repacks on x86: IQ4_NL (and Q4_0) only.
TEST(QuantLegacyTable, RepackedOrderOnlyForIQ4_NL) {
  EXPECT_NE(quant_type(GgmlType::IQ4_NL)->dot_x8, nullptr);
  EXPECT_EQ(quant_type(GgmlType::Q4_1)->dot_x8, nullptr);
  EXPECT_EQ(quant_type(GgmlType::Q5_0)->dot_x8, nullptr);
  EXPECT_EQ(quant_type(GgmlType::Q5_1)->dot_x8, nullptr);
  EXPECT_EQ(quant_type(GgmlType::Q4_1)->partner, GgmlType::Q8_1);
  EXPECT_EQ(quant_type(GgmlType::Q5_1)->partner, GgmlType::Q8_1);
  EXPECT_EQ(quant_type(GgmlType::Q5_0)->partner, GgmlType::Q8_0);
  EXPECT_EQ(quant_type(GgmlType::IQ4_NL)->partner, GgmlType::Q8_0);
}

}  // namespace
}  // namespace ponder
