// The k-quant weight quantizers (kernels/quantize_k.cpp): hand-made rows whose blocks can be worked
// out by hand (rows on the format's grid, all-zero rows, one large outlier), and every Q2_K .. Q6_K
// tensor of the llama-quantize files of ../shared/models/kq against ponder's quantization of the F16
// source, block by block: byte-identical, or (where a float search could round differently) a
// block that reconstructs the source no worse than llama.cpp's.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <gtest/gtest.h>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/gguf.h"
#include "kernels/quant.h"
#include "kernels/quant_blocks.h"
#include "kernels/quantize.h"
#include "support/shared_data.h"

namespace ponder {
namespace {

using ::ponder::testing::shared_path;
using RowQuantizer = void (*)(uint8_t* out, const float* x, int64_t K);

// A row quantized with `quantize` and dequantized back with the type's table row.
std::vector<float> round_trip(GgmlType type, RowQuantizer quantize, const std::vector<float>& x,
                              std::vector<uint8_t>* bytes = nullptr) {
  const int64_t K = int64_t(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(ggml_row_size(type, K)));
  quantize(q.data(), x.data(), K);
  std::vector<float> out(x.size());
  quant_type(type)->dequantize(out.data(), q.data(), K);
  if (bytes) *bytes = q;
  return out;
}

struct KQuant {
  GgmlType type;
  RowQuantizer quantize;
  const char* name;
};
const KQuant kKQuants[] = {
    {GgmlType::Q2_K, quantize::row_q2_k, "Q2_K"}, {GgmlType::Q3_K, quantize::row_q3_k, "Q3_K"},
    {GgmlType::Q4_K, quantize::row_q4_k, "Q4_K"}, {GgmlType::Q5_K, quantize::row_q5_k, "Q5_K"},
    {GgmlType::Q6_K, quantize::row_q6_k, "Q6_K"},
};

TEST(QuantizeK, AllZeroRowsGiveZeroBlocks) {
  // Every search returns scale 0 (and min 0): d, dmin, scales and quants are all zero bytes.
  const std::vector<float> x(2 * kQK_K, 0.f);
  for (const KQuant& k : kKQuants) {
    std::vector<uint8_t> bytes;
    const std::vector<float> out = round_trip(k.type, k.quantize, x, &bytes);
    for (size_t i = 0; i < bytes.size(); ++i) ASSERT_EQ(bytes[i], 0) << k.name << " byte " << i;
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], 0.f) << k.name << " element " << i;
  }
}

TEST(QuantizeK, RowLengthNotAMultipleOf256Throws) {
  std::vector<float> x(kQK_K + 32, 1.f);
  std::vector<uint8_t> out(4096);
  for (const KQuant& k : kKQuants)
    EXPECT_THROW(k.quantize(out.data(), x.data(), kQK_K + 32), InvalidArgument) << k.name;
}

// Signed grid values with the most negative value first in every sub-block of 16.
int grid_value(int i, int lo, int hi) { return i % 16 == 0 ? lo : lo + (i * 7 + 3) % (hi - lo + 1); }

TEST(QuantizeK, Q6KRowOnTheGridReconstructsExactly) {
  // Sub-block j is a_j * l with a_j = 2^-(4 + j % 4) and l in -32..31, -32 first: the first
  // rounding fits exactly (scale a_j, every sum exact), so d = fp16(-2^-4 / 128) = -2^-11 and the
  // int8 scales -128 a_j / 2^-4 = -128, -64, -32, -16 reproduce every a_j, and every value, exactly.
  std::vector<float> x(kQK_K);
  for (int i = 0; i < kQK_K; ++i) x[i] = std::ldexp(float(grid_value(i, -32, 31)), -(4 + (i / 16) % 4));
  std::vector<uint8_t> bytes;
  const std::vector<float> out = round_trip(GgmlType::Q6_K, quantize::row_q6_k, x, &bytes);
  BlockQ6_K b;
  std::memcpy(&b, bytes.data(), sizeof b);
  EXPECT_EQ(fp16_to_fp32(b.d), -std::ldexp(1.f, -11));
  for (int j = 0; j < 16; ++j) EXPECT_EQ(b.scales[j], -128 >> (j % 4)) << "sub-block " << j;
  for (int i = 0; i < kQK_K; ++i) EXPECT_EQ(out[i], x[i]) << "element " << i;
}

TEST(QuantizeK, Q3KRowOnTheGridReconstructsExactly) {
  // Sub-block j is a_j * l with l in -4..3, -4 first, a_j = 2^-(2 + j % 4): each search fits a_j
  // exactly; d = fp16(-2^-2 / 32) = -2^-7 and the 6-bit scales -32 a_j / 2^-2 (stored + 32:
  // 0, 16, 24, 28) give d * (scale - 32) = a_j.
  std::vector<float> x(kQK_K);
  for (int i = 0; i < kQK_K; ++i) x[i] = std::ldexp(float(grid_value(i, -4, 3)), -(2 + (i / 16) % 4));
  std::vector<uint8_t> bytes;
  const std::vector<float> out = round_trip(GgmlType::Q3_K, quantize::row_q3_k, x, &bytes);
  BlockQ3_K b;
  std::memcpy(&b, bytes.data(), sizeof b);
  EXPECT_EQ(fp16_to_fp32(b.d), -std::ldexp(1.f, -7));
  for (int i = 0; i < kQK_K; ++i) EXPECT_EQ(out[i], x[i]) << "element " << i;
}

// Rows x = a * q (q in 0..nmax, each sub-block holding 0 and nmax, a = 2^-5): the first rounding of
// make_qkx2_quants fits with zero error, so every sub-block gets scale a and min 0; the stored
// scales are then all the top value (15 for Q2_K, 63 for Q4_K/Q5_K) with d = fp16(a / top) and
// dmin = 0, and every quant comes back as q: the row dequantizes to (d * top) * q exactly.
void expect_affine_grid(GgmlType type, RowQuantizer quantize, int nmax, int sub, float top) {
  const float a = std::ldexp(1.f, -5);
  std::vector<float> x(2 * kQK_K);
  std::vector<int> q(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const int r = int(i % sub);
    q[i] = r == 0 ? 0 : r == 1 ? nmax : int(i * 5 + 1) % (nmax + 1);
    x[i] = a * float(q[i]);
  }
  const std::vector<float> out = round_trip(type, quantize, x);
  const float step = fp16_to_fp32(fp32_to_fp16(a / top)) * top;
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_EQ(out[i], step * float(q[i])) << ggml_type_name(uint32_t(type)) << " element " << i;
}

TEST(QuantizeK, AffineRowsOnTheGridKeepTheirQuants) {
  expect_affine_grid(GgmlType::Q2_K, quantize::row_q2_k, 3, 16, 15.f);
  expect_affine_grid(GgmlType::Q4_K, quantize::row_q4_k, 15, 32, 63.f);
  expect_affine_grid(GgmlType::Q5_K, quantize::row_q5_k, 31, 32, 63.f);
}

TEST(QuantizeK, Q6KOneLargeOutlier) {
  // x[0] = 100 among values below 0.02. Sub-block 0 fits scale -100/32 = -3.125 (its small values
  // round to 0 at every tried scale), the largest, so d = fp16(3.125 / 128) = 25/1024 with int8
  // scale -128: the outlier comes back exactly (d * -128 * (0 - 32) = 100). Every other sub-block's
  // scale (<= 0.02 / 32) is below half a step of d and is stored as 0: all its values come back 0.
  std::vector<float> x(kQK_K);
  for (int i = 0; i < kQK_K; ++i) x[i] = 0.02f * std::sin(0.37f * float(i));
  x[0] = 100.f;
  std::vector<uint8_t> bytes;
  const std::vector<float> out = round_trip(GgmlType::Q6_K, quantize::row_q6_k, x, &bytes);
  BlockQ6_K b;
  std::memcpy(&b, bytes.data(), sizeof b);
  EXPECT_EQ(fp16_to_fp32(b.d), 25.f / 1024.f);
  EXPECT_EQ(b.scales[0], -128);
  for (int j = 1; j < 16; ++j) EXPECT_EQ(b.scales[j], 0) << "sub-block " << j;
  EXPECT_EQ(out[0], 100.f);
  for (int i = 1; i < kQK_K; ++i) EXPECT_EQ(out[i], 0.f) << "element " << i;
}

// ---- against llama-quantize's files ----

struct Comparison {
  int64_t blocks = 0, identical = 0, differing = 0;
  double sse_ponder = 0, sse_llama = 0;  // over the differing blocks
};

double block_sse(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += (double(a[i]) - double(b[i])) * (double(a[i]) - double(b[i]));
  return s;
}

// Every tensor of `type` in the quantized file against ponder's quantization of the same tensor of
// the F16 source, block by block. A block whose bytes differ must reconstruct the source no worse
// than llama.cpp's (sum of squared errors, within a relative 1e-6).
void compare_file(const KQuant& k, const std::string& source, const std::string& quantized, Comparison& c) {
  const GgufFile src = read_gguf(shared_path("models/kq/" + source));
  const GgufFile ref = read_gguf(shared_path("models/kq/" + quantized));
  const int64_t block_bytes = ggml_type_size(k.type);
  for (const GgufTensor& t : ref.tensors) {
    if (t.type != k.type) continue;
    const GgufTensor& s = src.get_tensor(t.name);
    ASSERT_EQ(s.type, GgmlType::F16) << t.name;
    ASSERT_EQ(s.ne, t.ne) << t.name;
    const int64_t K = t.ne[0], n_rows = t.n_elements() / K;
    const int64_t row_bytes = ggml_row_size(k.type, K);
    const uint16_t* half = reinterpret_cast<const uint16_t*>(s.data);
    std::vector<float> x(static_cast<size_t>(K)), mine_x(kQK_K), ref_x(kQK_K);
    std::vector<uint8_t> mine(static_cast<size_t>(row_bytes));
    for (int64_t r = 0; r < n_rows; ++r) {
      for (int64_t i = 0; i < K; ++i) x[i] = fp16_to_fp32(half[r * K + i]);
      k.quantize(mine.data(), x.data(), K);
      const uint8_t* theirs = t.data + r * row_bytes;
      for (int64_t b = 0; b < K / kQK_K; ++b) {
        ++c.blocks;
        const uint8_t* mb = mine.data() + b * block_bytes;
        const uint8_t* tb = theirs + b * block_bytes;
        if (std::memcmp(mb, tb, size_t(block_bytes)) == 0) {
          ++c.identical;
          continue;
        }
        ++c.differing;
        quant_type(k.type)->dequantize(mine_x.data(), mb, kQK_K);
        quant_type(k.type)->dequantize(ref_x.data(), tb, kQK_K);
        const double e_mine = block_sse(mine_x.data(), x.data() + b * kQK_K, kQK_K);
        const double e_ref = block_sse(ref_x.data(), x.data() + b * kQK_K, kQK_K);
        c.sse_ponder += e_mine;
        c.sse_llama += e_ref;
        EXPECT_LE(e_mine, e_ref * (1 + 1e-6)) << quantized << " " << t.name << " row " << r << " block " << b;
      }
    }
  }
}

void compare_with_llama_quantize(const KQuant& k, const std::vector<std::string>& files) {
  Comparison c;
  for (const std::string& f : files) {
    PONDER_REQUIRE_SHARED("models/kq/" + f);
    const std::string source = f.starts_with("tiny-qwen2") ? "tiny-qwen2-kq.gguf" : "tiny-llama-kq.gguf";
    PONDER_REQUIRE_SHARED("models/kq/" + source);
    compare_file(k, source, f, c);
  }
  std::printf("[ QuantizeK ] %s: %lld blocks, %lld identical, %lld differing (SSE ponder %.9g, llama.cpp %.9g)\n",
              k.name, (long long)c.blocks, (long long)c.identical, (long long)c.differing, c.sse_ponder,
              c.sse_llama);
  EXPECT_GT(c.blocks, 0) << k.name << ": no tensor of this type in the files";
  // Every block is byte-identical today (the bound above is the fallback the design allows); a
  // differing block means the arithmetic left llama.cpp's order (e.g. an fma crept in).
  EXPECT_EQ(c.differing, 0) << k.name << ": blocks not byte-identical to llama-quantize";
}

// The files holding each type (../shared/models/kq/README.md).
TEST(QuantizeK, Q2KMatchesLlamaQuantize) {
  compare_with_llama_quantize(kKQuants[0], {"tiny-llama-kq-q2_k.gguf"});
}
TEST(QuantizeK, Q3KMatchesLlamaQuantize) {
  compare_with_llama_quantize(kKQuants[1], {"tiny-llama-kq-q2_k.gguf", "tiny-llama-kq-q3_k_m.gguf",
                                            "tiny-qwen2-kq-q2_k.gguf"});
}
TEST(QuantizeK, Q4KMatchesLlamaQuantize) {
  compare_with_llama_quantize(kKQuants[2], {"tiny-llama-kq-q3_k_m.gguf", "tiny-llama-kq-q4_k_m.gguf",
                                            "tiny-qwen2-kq-q3_k_m.gguf", "tiny-qwen2-kq-q4_k_m.gguf"});
}
TEST(QuantizeK, Q5KMatchesLlamaQuantize) {
  compare_with_llama_quantize(kKQuants[3], {"tiny-llama-kq-q3_k_m.gguf", "tiny-llama-kq-q5_k_m.gguf",
                                            "tiny-qwen2-kq-q5_k_m.gguf"});
}
TEST(QuantizeK, Q6KMatchesLlamaQuantize) {
  compare_with_llama_quantize(kKQuants[4], {"tiny-llama-kq-q6_k.gguf", "tiny-llama-kq-q4_k_m.gguf",
                                            "tiny-llama-kq-q5_k_m.gguf", "tiny-llama-kq-q2_k.gguf",
                                            "tiny-qwen2-kq-q6_k.gguf", "tiny-qwen2-kq-q4_k_m.gguf"});
}

}  // namespace
}  // namespace ponder
