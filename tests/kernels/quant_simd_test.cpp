// The SIMD tiles of the quantized types (kernels/matmul_x86.cpp, quant_x86_*.cpp) against the
// portable path, bitwise: random blocks with sane fp16 scales, every batch size and chunk shape
// (which picks llama.cpp's gemv or gemm order per row), 1 and 2 threads; the repacked layouts
// against the GGUF rows; the SIMD activation quantizers against the portable ones.
#include <cmath>
#include <cstring>
#include <gtest/gtest.h>
#include <omp.h>
#include <random>
#include <string>
#include <vector>

#include "core/cpu.h"
#include "core/error.h"
#include "core/fp16.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "support/simd_levels.h"

namespace ponder {
namespace {

// A type's block: its bytes, its weights, and where its fp16 scales sit.
struct BlockShape {
  GgmlType type;
  std::vector<int> fp16_offsets;  // d, and dmin / m where the type has one
};

const std::vector<BlockShape>& block_shapes() {
  static const std::vector<BlockShape> shapes = {
      {GgmlType::Q4_K, {0, 2}},   {GgmlType::Q6_K, {208}},   {GgmlType::Q5_0, {0}},    {GgmlType::Q8_0, {0}},
      {GgmlType::Q4_0, {0}},      {GgmlType::Q5_K, {0, 2}},  {GgmlType::Q4_1, {0, 2}}, {GgmlType::Q5_1, {0, 2}},
      {GgmlType::IQ4_NL, {0}},    {GgmlType::Q3_K, {108}},   {GgmlType::Q2_K, {80, 82}}, {GgmlType::IQ4_XS, {0}},
  };
  return shapes;
}

std::string name(GgmlType t) { return ggml_type_name(uint32_t(t)); }
void PrintTo(const BlockShape& s, std::ostream* os) { *os << name(s.type); }

// N rows of K weights: random bytes, then every fp16 scale set to a moderate random value.
std::vector<uint8_t> random_rows(const BlockShape& s, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(size_t(N * ggml_row_size(s.type, K)));
  for (uint8_t& b : bytes) b = uint8_t(rng());
  std::uniform_real_distribution<float> ud(0.001f, 0.02f);
  const size_t block = size_t(ggml_type_size(s.type));
  for (size_t i = 0; i < bytes.size() / block; ++i)
    for (int off : s.fp16_offsets) {
      const uint16_t h = fp32_to_fp16(rng() % 4 ? ud(rng) : -ud(rng));
      std::memcpy(bytes.data() + i * block + size_t(off), &h, 2);
    }
  return bytes;
}

// Activations with a few large values, exact ties and zero rows, so the quantizers see their edge cases.
std::vector<float> random_acts(int64_t T, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(size_t(T * K));
  for (float& v : x) v = nd(rng);
  for (int64_t i = 0; i < T * K; i += 97) x[size_t(i)] *= 30.f;
  for (int64_t i = 5; i < T * K; i += 131) x[size_t(i)] = -x[size_t(i - 1)];  // +max and -max both present
  for (int64_t i = 7; i < T * K; i += 61) x[size_t(i)] = 0.5f * float(int(rng() % 9) - 4);
  if (T > 2)
    for (int64_t k = 0; k < K; ++k) x[size_t(2 * K + k)] = 0.f;  // an all-zero row
  return x;
}

// The chunk lists tried for T rows: all alone (decode), one chunk, and mixes of chunk shapes.
std::vector<std::vector<int32_t>> chunk_lists(int32_t T) {
  std::vector<std::vector<int32_t>> lists = {{}, {T}};
  if (T >= 2) lists.push_back({1, T - 1});
  if (T >= 3) lists.push_back({T - 2, 1, 1});
  if (T >= 9) lists.push_back({6, 1, T - 7});
  if (T >= 17) lists.push_back({4, 9, T - 13});
  return lists;
}

std::vector<float> run(const PackedActivations& p, const WeightView& w, SimdLevel level, int threads) {
  std::vector<float> y(size_t(p.n_rows * w.n_rows));
  omp_set_num_threads(threads);
  matmul_at(y.data(), w.n_rows, p, w, level);
  return y;
}

class QuantSimd : public ::testing::TestWithParam<BlockShape> {};

TEST_P(QuantSimd, MatchesPortableBitwiseAtEveryBatchChunkAndThreadCount) {
  const BlockShape& s = GetParam();
  const QuantType* q = quant_type(s.type);
  ASSERT_NE(q, nullptr);
  const int saved = omp_get_max_threads();
  const std::vector<SimdLevel> levels = simd_levels();
  // 24 rows: the 8-row orders where llama.cpp has them; 13 rows: the one-row order, a partial tile.
  for (const int64_t N : {24, 13}) {
    const int64_t K = 1024;
    const auto bytes = random_rows(s, N, K, uint32_t(N) * 7 + uint32_t(s.type));
    const bool x8 = has_x8_order(*q) && N % 8 == 0;
    const WeightView rows{.type = s.type, .data = bytes.data(), .n_rows = N, .n_cols = K,
                          .order = x8 ? DotOrder::Interleaved8 : DotOrder::Row};
    WeightView packed = rows;
    const std::vector<uint8_t> repacked = repack_for_kernels(packed);
    for (const int32_t T : {1, 2, 3, 4, 5, 8, 9, 17}) {
      const auto x = random_acts(T, K, uint32_t(T) * 31 + uint32_t(N));
      for (const auto& chunks : chunk_lists(T)) {
        PackedActivations p;
        pack_activations(p, x.data(), T, K, s.type, chunks);
        const std::vector<float> want = run(p, rows, SimdLevel::Portable, 1);
        for (const int threads : {1, 2})
          for (const SimdLevel level : levels) {
            const std::vector<float> got = run(p, packed, level, threads);
            for (size_t i = 0; i < want.size(); ++i)
              ASSERT_EQ(fp32_to_bits(got[i]), fp32_to_bits(want[i]))
                  << name(s.type) << " N=" << N << " T=" << T << " chunks=" << chunks.size() << " threads=" << threads
                  << " " << simd_level_name(level) << " token " << i / size_t(N) << " row " << i % size_t(N) << ": "
                  << got[i] << " vs " << want[i];
          }
      }
    }
    // The repacked layout keeps every row's weights.
    std::vector<float> a(static_cast<size_t>(K)), b(static_cast<size_t>(K));
    for (int64_t n = 0; n < N; ++n) {
      dequantize_row(a.data(), rows, n);
      dequantize_row(b.data(), packed, n);
      ASSERT_EQ(a, b) << name(s.type) << " row " << n;
    }
  }
  omp_set_num_threads(saved);
}

// Every quantized type has SIMD tiles and runs them at the CPU's level.
TEST_P(QuantSimd, KernelPathNamesTheTiles) {
  const BlockShape& s = GetParam();
  const int64_t N = 16, K = 256;
  const auto bytes = random_rows(s, N, K, 1);
  const QuantType* q = quant_type(s.type);
  WeightView w{.type = s.type, .data = bytes.data(), .n_rows = N, .n_cols = K,
               .order = has_x8_order(*q) ? DotOrder::Interleaved8 : DotOrder::Row};
  const auto repacked = repack_for_kernels(w);
  EXPECT_STREQ(matmul_kernel_path(w), simd_level_name(simd_level())) << name(s.type);
}

INSTANTIATE_TEST_SUITE_P(QuantSimdTypes, QuantSimd, ::testing::ValuesIn(block_shapes()),
                         [](const auto& info) { return name(info.param.type); });

// pack_activations (SIMD quantizers where the build has them) writes the bytes of the portable

// The SIMD tiles run exactly when the CPU reports every feature they use (CPUID, checked at run
// time): a binary built for plain x86-64 takes the AVX-512 VNNI tiles on a machine that has it, the
// AVX2 tiles on one with AVX2, FMA and F16C only, and the portable path elsewhere, and a native
// build on a CPU without AVX-512 never reaches an AVX-512 instruction.
TEST(QuantSimdDispatch, TilesRunExactlyWhenTheCpuHasTheirFeatures) {
#if defined(__x86_64__)
  const CpuFeatures& c = cpu_features();
  const SimdLevel want = c.avx512_kernels() ? SimdLevel::Avx512Vnni
                         : c.avx2_kernels() ? SimdLevel::Avx2
                                            : SimdLevel::Portable;
  EXPECT_EQ(simd_level(), want) << cpu_features_string();
#else
  EXPECT_EQ(simd_level(), SimdLevel::Portable);
#endif
  std::vector<uint8_t> bytes(size_t(ggml_row_size(GgmlType::Q6_K, 256)) * 4);
  const WeightView w{.type = GgmlType::Q6_K, .data = bytes.data(), .n_rows = 4, .n_cols = 256};
  EXPECT_STREQ(matmul_kernel_path(w), simd_level_name(simd_level()));
  // A level above the CPU's is refused, not run.
  if (simd_level() != SimdLevel::Avx512Vnni) {
    PackedActivations p;
    std::vector<float> x(256), y(4);
    pack_activations(p, x.data(), 1, 256, GgmlType::Q6_K);
    EXPECT_THROW(matmul_at(y.data(), 4, p, w, SimdLevel::Avx512Vnni), InvalidArgument);
  }
}

// quantize_activation_row for every partner format, edge cases included.
TEST(QuantSimdActivations, PackedBytesEqualPortableQuantizer) {
  const int64_t K = 2048, T = 6;
  auto x = random_acts(T, K, 11);
  // Row 3: every value the same magnitude, the first one negative (the Q8_K scale takes its sign).
  for (int64_t k = 0; k < K; ++k) x[size_t(3 * K + k)] = (k % 3 ? 2.5f : -2.5f);
  // Row 4: exact halves after scaling (x * 127 / 127 = x), ties rounded to even.
  for (int64_t k = 0; k < K; ++k) x[size_t(4 * K + k)] = k % 32 == 0 ? 127.f : float(k % 64) - 31.5f;
  // Row 5: tiny values (their fp16 scales round to zero).
  for (int64_t k = 0; k < K; ++k) x[size_t(5 * K + k)] = float(int(k % 7) - 3) * 1e-30f;
  for (const SimdLevel level : simd_levels())
    for (const GgmlType weight : {GgmlType::Q5_0, GgmlType::Q4_1, GgmlType::Q4_K}) {
      const GgmlType partner = quant_type(weight)->partner;
      PackedActivations p;
      pack_activations_at(p, x.data(), T, K, weight, {}, level);
      std::vector<uint8_t> want(size_t(activation_row_bytes(partner, K)));
      for (int64_t t = 0; t < T; ++t) {
        quantize_activation_row(want.data(), x.data() + t * K, K, partner);
        ASSERT_EQ(std::memcmp(p.row(t), want.data(), want.size()), 0)
            << name(partner) << " " << simd_level_name(level) << " row " << t;
      }
    }
}

}  // namespace
}  // namespace ponder
