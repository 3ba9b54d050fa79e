// The k-quants Q4_K, Q5_K, Q6_K (kernels/quant_k.cpp): dequantization of hand-made blocks against
// the format's formula written out here, every dot product order against a float64 sum over the
// dequantized weights and activations, and the Q8_K activation quantizer on hand-made rows.
// (Bitwise agreement with llama.cpp is checked end to end by tests/model/llamacpp_reference_test.cpp.)
#include <cmath>
#include <cstring>
#include <gtest/gtest.h>
#include <random>
#include <vector>

#include "core/fp16.h"
#include "kernels/quant.h"
#include "kernels/quant_internal.h"

namespace ponder {
namespace {

constexpr uint16_t kHalf = 0x3800;     // fp16 0.5
constexpr uint16_t kQuarter = 0x3400;  // fp16 0.25

// Scales 1, 2, 3, 4, 17, 34, 51, 63 and mins 5, 6, 7, 8, 20, 37, 54, 60, packed by hand: bytes 0..3
// are scale j | (scale j+4 >> 4) << 6, bytes 4..7 min j | (min j+4 >> 4) << 6, bytes 8..11
// (scale j+4 & 15) | (min j+4 & 15) << 4.
constexpr uint8_t kPackedScales[12] = {65, 130, 195, 196, 69, 134, 199, 200, 65, 82, 99, 207};
constexpr int kScale[8] = {1, 2, 3, 4, 17, 34, 51, 63};
constexpr int kMin[8] = {5, 6, 7, 8, 20, 37, 54, 60};

// The nibble of element e of a Q4_K/Q5_K super-block: 64-element chunk c = e / 64 takes the low
// nibbles of qs[32c ..] for its first 32 elements and the high nibbles for its last 32.
int k4_nibble(const uint8_t* qs, int e) {
  const int c = e / 64, i = e % 64;
  const uint8_t byte = qs[32 * c + i % 32];
  return i < 32 ? byte & 15 : byte >> 4;
}

void fill_qs(uint8_t* qs, int n) {
  for (int i = 0; i < n; ++i) qs[i] = uint8_t(i * 37 + 11);
}

TEST(QuantK, DequantizeQ4KHandMadeBlock) {
  BlockQ4_K b{.d = kHalf, .dmin = kQuarter};
  std::memcpy(b.scales, kPackedScales, 12);
  fill_qs(b.qs, kQK_K / 2);
  float out[kQK_K];
  quant::dequantize_q4_k(out, reinterpret_cast<const uint8_t*>(&b), kQK_K);
  for (int e = 0; e < kQK_K; ++e) {
    const int s = e / 32;  // sub-block
    EXPECT_EQ(out[e], 0.5f * float(kScale[s] * k4_nibble(b.qs, e)) - 0.25f * float(kMin[s])) << "element " << e;
  }
  // Spot checks: element 0 is qs[0] = 11 low nibble 11 (scale 1, min 5); element 32 its high nibble 0
  // (scale 2, min 6); element 255 the high nibble of qs[127] = 0x66 (6; scale 63, min 60).
  EXPECT_EQ(out[0], 0.5f * 11 - 1.25f);
  EXPECT_EQ(out[32], -1.5f);
  EXPECT_EQ(out[255], 0.5f * 63 * 6 - 15.f);
}

TEST(QuantK, DequantizeQ5KHandMadeBlock) {
  BlockQ5_K b{.d = kHalf, .dmin = kQuarter};
  std::memcpy(b.scales, kPackedScales, 12);
  fill_qs(b.qs, kQK_K / 2);
  for (int l = 0; l < 32; ++l) b.qh[l] = uint8_t(0xA5 ^ (l * 29));
  float out[kQK_K];
  quant::dequantize_q5_k(out, reinterpret_cast<const uint8_t*>(&b), kQK_K);
  for (int e = 0; e < kQK_K; ++e) {
    const int s = e / 32;                          // sub-block s takes bit s of qh[e % 32] as bit 4
    const int q = k4_nibble(b.qs, e) + 16 * ((b.qh[e % 32] >> s) & 1);
    EXPECT_EQ(out[e], 0.5f * float(kScale[s] * q) - 0.25f * float(kMin[s])) << "element " << e;
  }
  // Element 0: nibble 11, qh[0] = 0xA5 bit 0 set -> q = 27. Element 32: nibble 0, bit 1 of 0xA5 clear.
  EXPECT_EQ(out[0], 0.5f * 27 - 1.25f);
  EXPECT_EQ(out[32], -1.5f);
}

TEST(QuantK, DequantizeQ6KHandMadeBlock) {
  BlockQ6_K b{.d = kHalf};
  fill_qs(b.ql, kQK_K / 2);
  for (int i = 0; i < kQK_K / 4; ++i) b.qh[i] = uint8_t(i * 53 + 7);
  const int8_t scales[16] = {1, -2, 3, -4, 5, -6, 7, -8, 127, -128, 10, -11, 12, -13, 14, -15};
  std::memcpy(b.scales, scales, 16);
  float out[kQK_K];
  quant::dequantize_q6_k(out, reinterpret_cast<const uint8_t*>(&b), kQK_K);
  for (int e = 0; e < kQK_K; ++e) {
    // half h = e / 128; within it, 32-element run k = (e % 128) / 32, position l = e % 32: low bits
    // from ql[64h + l] (k = 0, 2: low/high nibble) or ql[64h + 32 + l] (k = 1, 3), high bits 2k..2k+1
    // of qh[32h + l]; the weight is d * scale[e / 16] * (q - 32).
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo = b.ql[64 * h + 32 * (k % 2) + l];
    const int q = (k < 2 ? lo & 15 : lo >> 4) | ((b.qh[32 * h + l] >> (2 * k)) & 3) << 4;
    EXPECT_EQ(out[e], 0.5f * float(scales[e / 16]) * float(q - 32)) << "element " << e;
  }
  // Element 0: ql[0] = 11, qh[0] = 7 (bits 0..1 = 3) -> q = 59, scale 1: 0.5 * 27.
  EXPECT_EQ(out[0], 13.5f);
  // Element 101 (h 0, k 3, l 5): ql[37] = 0x64 high nibble 6, qh[5] = 0x10 bits 6..7 = 0 -> q = 6,
  // scale[6] = 7: 0.5 * 7 * -26.
  EXPECT_EQ(out[101], -91.f);
}

// ---- dot products against float64 ----

// A random but valid row of a k-quant type: random bytes, moderate fp16 scales.
std::vector<uint8_t> random_row(GgmlType type, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> row(size_t(ggml_row_size(type, K)));
  for (uint8_t& v : row) v = uint8_t(rng());
  std::uniform_real_distribution<float> ud(0.001f, 0.02f);
  const size_t block = type == GgmlType::Q6_K ? sizeof(BlockQ6_K) : type == GgmlType::Q5_K ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  for (int64_t b = 0; b < K / kQK_K; ++b) {
    uint8_t* p = row.data() + b * int64_t(block);
    const uint16_t d = fp32_to_fp16(ud(rng)), dmin = fp32_to_fp16(ud(rng));
    if (type == GgmlType::Q6_K) {
      std::memcpy(p + block - 2, &d, 2);
    } else {
      std::memcpy(p, &d, 2);
      std::memcpy(p + 2, &dmin, 2);
    }
  }
  return row;
}

double ref_dot(const QuantType& q, const uint8_t* w, const BlockQ8_K* x, int64_t K) {
  std::vector<float> wf(size_t(K), 0.f);
  q.dequantize(wf.data(), w, K);
  double s = 0;
  for (int64_t k = 0; k < K; ++k) s += double(wf[size_t(k)]) * double(x[k / kQK_K].d) * double(x[k / kQK_K].qs[k % kQK_K]);
  return s;
}

TEST(QuantK, DotProductsMatchFloat64) {
  const int64_t K = 1024;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(static_cast<size_t>(K));
  for (float& v : x) v = nd(rng);
  std::vector<uint8_t> xq(size_t(activation_row_bytes(GgmlType::Q8_K, K)));
  quantize_activation_row(xq.data(), x.data(), K, GgmlType::Q8_K);
  const auto* xb = reinterpret_cast<const BlockQ8_K*>(xq.data());
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const QuantType* q = quant_type(type);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->partner, GgmlType::Q8_K);
    EXPECT_EQ(q->dot_x8 != nullptr, type == GgmlType::Q4_K);  // x86 repacks only Q4_K
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      SCOPED_TRACE(std::string(ggml_type_name(uint32_t(type))) + " seed " + std::to_string(seed));
      const auto w = random_row(type, K, seed);
      const double want = ref_dot(*q, w.data(), xb, K);
      std::vector<float> wf(static_cast<size_t>(K));
      q->dequantize(wf.data(), w.data(), K);
      double scale = 0;  // the size of the terms, for the tolerance
      for (int64_t k = 0; k < K; ++k) scale += std::fabs(double(wf[size_t(k)]) * double(x[size_t(k)]));
      const double tol = 1e-5 * scale;
      EXPECT_NEAR(q->dot(w.data(), xq.data(), K), want, tol);
      if (type == GgmlType::Q4_K) {
        EXPECT_NEAR(quant::dot_x8_q4_k(w.data(), xq.data(), K), want, tol);
        EXPECT_NEAR(quant::dot_x8_q4_k_gemm(w.data(), xq.data(), K), want, tol);
      }
    }
  }
}

// ---- the Q8_K activation quantizer ----

TEST(QuantK, QuantizeQ8KHandMadeRow) {
  std::vector<float> x(3 * kQK_K, 0.f);
  // Super-block 0: the largest magnitude is negative (-127), so d = 1 / (-127 / -127) = 1 and
  // q = round-half-even(x).
  for (int j = 0; j < kQK_K; ++j) x[size_t(j)] = float(j % 16) - 7.5f;  // -7.5 .. 7.5
  x[40] = -127.f;
  x[41] = 126.5f;
  // Super-block 1: largest +63.5 first, then -63.5: the first one counts, so iscale = -127 / 63.5 = -2,
  // d = -0.5 and q = round-half-even(-2 x).
  for (int j = 0; j < kQK_K; ++j) x[size_t(kQK_K + j)] = 0.25f * float(j % 8);  // 0 .. 1.75
  x[kQK_K + 3] = 63.5f;
  x[kQK_K + 4] = -63.5f;
  // Super-block 2: all zero.
  std::vector<uint8_t> out(size_t(activation_row_bytes(GgmlType::Q8_K, 3 * kQK_K)));
  quantize_activation_row(out.data(), x.data(), 3 * kQK_K, GgmlType::Q8_K);
  const auto* b = reinterpret_cast<const BlockQ8_K*>(out.data());

  EXPECT_EQ(b[0].d, 1.f);
  EXPECT_EQ(b[0].qs[0], -8);   // -7.5 -> -8 (even)
  EXPECT_EQ(b[0].qs[1], -6);   // -6.5 -> -6
  EXPECT_EQ(b[0].qs[8], 0);    // 0.5 -> 0
  EXPECT_EQ(b[0].qs[9], 2);    // 1.5 -> 2
  EXPECT_EQ(b[0].qs[40], -127);
  EXPECT_EQ(b[0].qs[41], 126);  // 126.5 -> 126
  // bsums: each 16 values of -7.5..7.5 round to -8,-6,-6,-4,-4,-2,-2,0,0,2,2,4,4,6,6,8 (sum 0);
  // group 2 (elements 32..47) has 40 and 41 replaced: -127 and 126 instead of 0 and 2.
  for (int g = 0; g < kQK_K / 16; ++g) EXPECT_EQ(b[0].bsums[g], g == 2 ? -3 : 0) << "group " << g;

  EXPECT_EQ(b[1].d, -0.5f);
  EXPECT_EQ(b[1].qs[3], -127);
  EXPECT_EQ(b[1].qs[4], 127);
  EXPECT_EQ(b[1].qs[1], 0);   // -2 * 0.25 = -0.5 -> 0 (even)
  EXPECT_EQ(b[1].qs[2], -1);  // -1
  EXPECT_EQ(b[1].qs[5], -2);  // -2.5 -> -2
  EXPECT_EQ(b[1].qs[7], -4);  // -3.5 -> -4
  int sum = 0;  // group 0: q of 0, .25, .., 1.75 twice (0 0 -1 -2 -2 -2 -3 -4 = -14 each), 3 and 4 replaced
  for (int i = 0; i < 16; ++i) sum += b[1].qs[i];
  EXPECT_EQ(sum, -28 - (-2 - 2) + (-127 + 127));
  EXPECT_EQ(b[1].bsums[0], sum);
  EXPECT_EQ(b[1].bsums[1], -28);

  EXPECT_EQ(b[2].d, 0.f);
  for (int j = 0; j < kQK_K; ++j) EXPECT_EQ(b[2].qs[j], 0);
  for (int g = 0; g < kQK_K / 16; ++g) EXPECT_EQ(b[2].bsums[g], 0);
}

}  // namespace
}  // namespace ponder
