// matmul against a float64 reference of the same math, SIMD against the portable lane-by-lane
// path (bitwise), and batch invariance (a row's result does not depend on the batch or threads).
#include "kernels/matmul.h"
#include "kernels/dot.h"

#include <cmath>
#include <gtest/gtest.h>
#include <omp.h>
#include <random>

#include "core/error.h"
#include "core/fp16.h"
#include "kernels/quant_internal.h"
#include "support/simd_levels.h"

namespace ponder {
namespace {

struct Matrix {
  std::vector<uint8_t> bytes;
  WeightView view;
};

// Random weights of a type: (N, K).
Matrix random_weights(GgmlType type, int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> w(size_t(N * K));
  for (float& x : w) x = nd(rng);
  Matrix m;
  const int64_t row_bytes = ggml_row_size(type, K);
  m.bytes.resize(size_t(N * row_bytes));
  for (int64_t r = 0; r < N; ++r) convert_row(m.bytes.data() + r * row_bytes, w.data() + r * K, K, type);
  m.view = WeightView{.type = type, .data = m.bytes.data(), .n_rows = N, .n_cols = K};
  return m;
}

std::vector<float> random_acts(int64_t T, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 2.f);
  std::vector<float> x(size_t(T * K));
  for (float& v : x) v = nd(rng);
  return x;
}

// float64 reference: dequantized weights times the activations as converted for the weight type.
double ref_dot(const WeightView& w, int64_t n, const PackedActivations& p, int64_t t) {
  const int64_t K = w.n_cols;
  std::vector<float> wr(static_cast<size_t>(K)), xr(static_cast<size_t>(K));
  dequantize_row(wr.data(), w, n);
  const QuantType* q = quant_type(p.type);
  if (q && q->partner == GgmlType::Q8_0) {  // ActBlockQ8: quants times the fp16-rounded scale
    const auto* xb = reinterpret_cast<const ActBlockQ8*>(p.row(t));
    for (int64_t k = 0; k < K; ++k) xr[size_t(k)] = xb[k / kQ8Block].d * float(xb[k / kQ8Block].qs[k % kQ8Block]);
  } else {
    dequantize_row(xr.data(), WeightView{.type = p.type, .data = p.row(t), .n_rows = 1, .n_cols = K}, 0);
  }
  double s = 0;
  for (int64_t k = 0; k < K; ++k) s += double(wr[size_t(k)]) * double(xr[size_t(k)]);
  return s;
}

class MatmulTypes : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulTypes, MatchesFloat64ReferenceAndPortablePathBitwise) {
  const GgmlType type = GetParam();
  const bool q8 = type == GgmlType::Q8_0;
  for (int64_t K : q8 ? std::vector<int64_t>{32, 64, 896} : std::vector<int64_t>{1, 7, 64, 172, 896}) {
    for (int64_t N : {1, 3, 4, 13}) {
      for (int64_t T : {1, 2, 5, 9}) {
        SCOPED_TRACE("K=" + std::to_string(K) + " N=" + std::to_string(N) + " T=" + std::to_string(T));
        Matrix w = random_weights(type, N, K, uint32_t(K * 31 + N));
        const auto x = random_acts(T, K, uint32_t(T + 7));
        PackedActivations p;
        pack_activations(p, x.data(), T, K, type);
        std::vector<float> y(size_t(T * N)), yp(size_t(T * N));
        matmul(y.data(), N, p, w.view);
        matmul_at(yp.data(), N, p, w.view, SimdLevel::Portable);
        for (const SimdLevel level : simd_levels()) {
          std::vector<float> yl(size_t(T * N));
          matmul_at(yl.data(), N, p, w.view, level);
          ASSERT_EQ(yl, yp) << simd_level_name(level);
        }
        if (q8) {  // the repacked layout gives the same bits at every level
          const auto packed = repack_q8x8(w.view);
          WeightView rv = w.view;
          rv.data = packed.data();
          rv.layout = WeightLayout::Q8x8;
          for (const SimdLevel level : simd_levels()) {
            std::vector<float> yr(size_t(T * N));
            matmul_at(yr.data(), N, p, rv, level);
            EXPECT_EQ(yr, y) << simd_level_name(level);
          }
          std::vector<float> row_a(static_cast<size_t>(K)), row_b(static_cast<size_t>(K));
          for (int64_t n = 0; n < N; ++n) {
            dequantize_row(row_a.data(), w.view, n);
            dequantize_row(row_b.data(), rv, n);
            ASSERT_EQ(row_a, row_b) << "row " << n;
          }
        }
        for (int64_t t = 0; t < T; ++t)
          for (int64_t n = 0; n < N; ++n) {
            const float got = y[size_t(t * N + n)];
            EXPECT_EQ(fp32_to_bits(got), fp32_to_bits(yp[size_t(t * N + n)])) << "t=" << t << " n=" << n;
            const double want = ref_dot(w.view, n, p, t);
            EXPECT_NEAR(got, want, 2e-6 * std::sqrt(double(K)) * (1 + std::fabs(want)) * (q8 ? 10 : 1));
          }
      }
    }
  }
}

TEST_P(MatmulTypes, BatchAndThreadInvariant) {
  const GgmlType type = GetParam();
  const int64_t K = 896, N = 523, T = 11;
  Matrix w = random_weights(type, N, K, 5);
  std::vector<uint8_t> repacked;
  if (type == GgmlType::Q8_0) {  // the layout the model uses
    repacked = repack_q8x8(w.view);
    w.view.data = repacked.data();
    w.view.layout = WeightLayout::Q8x8;
  }
  const auto x = random_acts(T, K, 9);
  PackedActivations p;
  pack_activations(p, x.data(), T, K, type);
  std::vector<float> batched(size_t(T * N));
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  matmul(batched.data(), N, p, w.view);
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    for (int64_t t = 0; t < T; ++t) {
      PackedActivations one;
      pack_activations(one, x.data() + t * K, 1, K, type);
      std::vector<float> alone(static_cast<size_t>(N));
      matmul(alone.data(), N, one, w.view);
      for (int64_t n = 0; n < N; ++n)
        ASSERT_EQ(fp32_to_bits(alone[size_t(n)]), fp32_to_bits(batched[size_t(t * N + n)]))
            << "threads=" << threads << " t=" << t << " n=" << n;
    }
  }
  omp_set_num_threads(saved);
}

INSTANTIATE_TEST_SUITE_P(Types, MatmulTypes,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0),
                         [](const auto& info) { return ggml_type_name(uint32_t(info.param)); });

// The order of llama.cpp's one-row dot products (ggml_vec_dot_q8_0_q8_0, ggml_vec_dot_f16 and
// ggml_vec_dot_f32 on AVX-512), written out here from their description, element by element.
// Matching it bit for bit is what keeps quantized models on llama.cpp's numbers: see
// tests/model/llamacpp_reference_test.cpp.
float llamacpp_order_q8_0(const WeightView& w, int64_t n, const PackedActivations& p, int64_t t) {
  const int64_t nb = w.n_cols / kQ8Block;
  const auto* wb = reinterpret_cast<const BlockQ8_0*>(w.row(n));
  const auto* xb = reinterpret_cast<const ActBlockQ8*>(p.row(t));
  float lane[8] = {};
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(wb[b].d) * xb[b].d;
    for (int j = 0; j < 8; ++j) {
      int s = 0;
      for (int i = 4 * j; i < 4 * j + 4; ++i) s += int(wb[b].qs[i]) * int(xb[b].qs[i]);
      lane[j] = std::fma(d, float(s), lane[j]);
    }
  }
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

float llamacpp_order_float(const float* w, const float* x, int64_t K, bool double_tail) {
  const int64_t np = K / 64 * 64;
  float acc[4][16] = {};
  for (int64_t k0 = 0; k0 < np; k0 += 64)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 16; ++l) acc[j][l] = std::fma(w[k0 + 16 * j + l], x[k0 + 16 * j + l], acc[j][l]);
  float v[16];
  for (int l = 0; l < 16; ++l) v[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
  for (int half = 8; half >= 1; half /= 2)
    for (int l = 0; l < half; ++l) v[l] = v[l] + v[l + half];
  if (double_tail) {
    double s = v[0];
    for (int64_t k = np; k < K; ++k) s += double(w[k] * x[k]);
    return float(s);
  }
  float s = v[0];
  for (int64_t k = np; k < K; ++k) s = std::fma(w[k], x[k], s);
  return s;
}

TEST(Matmul, FollowsLlamaCppSummationOrderBitwise) {
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::Q8_0}) {
    const bool q8 = type == GgmlType::Q8_0;
    for (int64_t K : q8 ? std::vector<int64_t>{32, 256, 896} : std::vector<int64_t>{7, 64, 172, 896}) {
      SCOPED_TRACE(std::string(ggml_type_name(uint32_t(type))) + " K=" + std::to_string(K));
      const int64_t N = 9, T = 3;
      Matrix w = random_weights(type, N, K, uint32_t(K + 3));
      const auto x = random_acts(T, K, 4);
      PackedActivations p;
      pack_activations(p, x.data(), T, K, type);
      std::vector<uint8_t> packed;
      WeightView view = w.view;
      if (q8) {
        packed = repack_q8x8(w.view);
        view.data = packed.data();
        view.layout = WeightLayout::Q8x8;
      }
      std::vector<float> wr(static_cast<size_t>(K)), xr(static_cast<size_t>(K));
      for (const SimdLevel level : simd_levels()) {
        std::vector<float> y(size_t(T * N));
        matmul_at(y.data(), N, p, view, level);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t n = 0; n < N; ++n) {
            float want;
            if (q8) {
              want = llamacpp_order_q8_0(w.view, n, p, t);
            } else {
              dequantize_row(wr.data(), w.view, n);
              dequantize_row(xr.data(), WeightView{.type = p.type, .data = p.row(t), .n_rows = 1, .n_cols = K}, 0);
              want = llamacpp_order_float(wr.data(), xr.data(), K, type == GgmlType::F16);
            }
            ASSERT_EQ(fp32_to_bits(y[size_t(t * N + n)]), fp32_to_bits(want))
                << simd_level_name(level) << ", t=" << t << " n=" << n;
          }
      }
    }
  }
}

// Q8_0 quantization by hand: amax 127 -> d = 1, q = round-half-even(x).
TEST(QuantizeQ8, HandComputedBlock) {
  float x[32];
  for (int i = 0; i < 32; ++i) x[i] = float(i) - 15.5f;  // -15.5 .. 15.5
  x[31] = 127.f;                                          // amax 127
  BlockQ8_0 b;
  quantize_row_q8_0(&b, x, 32);
  EXPECT_EQ(fp16_to_fp32(b.d), 1.0f);
  EXPECT_EQ(b.qs[0], -16);  // -15.5 -> -16 (even)
  EXPECT_EQ(b.qs[1], -14);  // -14.5 -> -14 (even)
  EXPECT_EQ(b.qs[16], 0);   // 0.5 -> 0 (even)
  EXPECT_EQ(b.qs[17], 2);   // 1.5 -> 2
  EXPECT_EQ(b.qs[31], 127);
  float zeros[32] = {};
  quantize_row_q8_0(&b, zeros, 32);
  EXPECT_EQ(b.d, 0);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(b.qs[i], 0);
}

}  // namespace
}  // namespace ponder

namespace ponder {
namespace {
// dot_f32 (attention's dot product) has the arithmetic of an F32 matmul row, bitwise.
TEST(DotF32, EqualsOneByOneF32Matmul) {
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (int64_t n : {1, 5, 8, 16, 64, 100}) {
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
    for (auto& v : a) v = nd(rng);
    for (auto& v : b) v = nd(rng);
    PackedActivations p;
    pack_activations(p, b.data(), 1, n, GgmlType::F32);
    float y = 0;
    const WeightView w{.type = GgmlType::F32, .data = reinterpret_cast<const uint8_t*>(a.data()), .n_rows = 1, .n_cols = n};
    matmul_at(&y, 1, p, w, SimdLevel::Portable);
    EXPECT_EQ(fp32_to_bits(dot_f32(a.data(), b.data(), n)), fp32_to_bits(y)) << "n=" << n;
  }
}
}  // namespace
}  // namespace ponder

namespace ponder {
namespace {

// Random Q4_0 weights (N, K): random nibbles and scales.
std::vector<uint8_t> random_q4_0(int64_t N, int64_t K, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::normal_distribution<float> nd(0.f, 0.05f);
  std::vector<uint8_t> bytes(size_t(N * ggml_row_size(GgmlType::Q4_0, K)));
  auto* b = reinterpret_cast<BlockQ4_0*>(bytes.data());
  for (int64_t i = 0; i < N * K / kQK; ++i) {
    b[i].d = fp32_to_fp16(nd(rng));
    for (uint8_t& q : b[i].qs) q = uint8_t(byte(rng));
  }
  return bytes;
}

// Q4_0 in llama.cpp's 8-row repacked order: the Q4x8 SIMD tiles, the portable path over the
// repacked bytes and the portable path over the GGUF rows give the same bits, at any batch size
// and thread count, and agree with a float64 dot of the dequantized values.
TEST(MatmulQ4x8, SimdPortableAndRowsAgreeBitwise) {
  const int64_t K = 256, N = 24;
  const auto bytes = random_q4_0(N, K, 3);
  const WeightView rows{.type = GgmlType::Q4_0, .data = bytes.data(), .n_rows = N, .n_cols = K,
                        .order = DotOrder::Interleaved8};
  const auto packed = repack_q4x8(rows);
  WeightView repacked = rows;
  repacked.data = packed.data();
  repacked.layout = WeightLayout::Q4x8;
  const int saved = omp_get_max_threads();
  for (int64_t T : {1, 3, 4, 9}) {
    const auto x = random_acts(T, K, uint32_t(T));
    PackedActivations p;
    pack_activations(p, x.data(), T, K, GgmlType::Q4_0);
    std::vector<float> want(size_t(T * N)), got(want.size());
    matmul_at(want.data(), N, p, rows, SimdLevel::Portable);
    for (int threads : {1, 2}) {
      omp_set_num_threads(threads);
      for (const SimdLevel level : simd_levels()) {
        matmul_at(got.data(), N, p, repacked, level);
        for (size_t i = 0; i < want.size(); ++i)
          ASSERT_EQ(fp32_to_bits(got[i]), fp32_to_bits(want[i])) << simd_level_name(level) << " T=" << T << " i=" << i;
      }
    }
    for (int64_t t = 0; t < T; ++t)
      for (int64_t n = 0; n < N; ++n) {
        const double ref = ref_dot(rows, n, p, t);
        EXPECT_NEAR(want[size_t(t * N + n)], ref, 1e-5 * (1 + std::fabs(ref)));
        std::vector<float> a(static_cast<size_t>(K)), b(static_cast<size_t>(K));
        dequantize_row(a.data(), rows, n);
        dequantize_row(b.data(), repacked, n);
        ASSERT_EQ(a, b) << "row " << n;
      }
  }
  omp_set_num_threads(saved);
}

// Random k-quant blocks: random bytes, then sane fp16 scales (d, and dmin where the type has one).
template <typename Block>
std::vector<uint8_t> random_blocks(int64_t N, int64_t K, uint32_t seed, bool has_dmin) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> bytes(size_t(N * (K / kQK_K)) * sizeof(Block));
  for (uint8_t& b : bytes) b = uint8_t(rng());
  std::uniform_real_distribution<float> ud(0.001f, 0.02f);
  for (size_t i = 0; i < bytes.size() / sizeof(Block); ++i) {
    auto* blk = reinterpret_cast<Block*>(bytes.data()) + i;
    blk->d = fp32_to_fp16(ud(rng));
    if constexpr (requires { blk->dmin; })
      if (has_dmin) blk->dmin = fp32_to_fp16(ud(rng));
  }
  return bytes;
}

// llama.cpp runs a prompt of n tokens through its repacked Q4_K/Q2_K gemm 4 tokens at a time and
// the last n % 4 through the gemv, and through IQ4_XS's panel kernels when n >= 8 (kernels/quant.h).
// A row's kernel order follows its own chunk, whatever else is in the batch.
TEST(Matmul, ChunkShapesPickLlamaCppKernelOrders) {
  const int64_t K = 512, N = 16;
  struct Case {
    GgmlType type;
    std::vector<uint8_t> bytes;
    QuantDot group4, rest;  // orders for rows among the first n - n % 4 of a chunk, and the others
    QuantDot chunk8;        // order for every row of a chunk of >= 8 (nullptr: none)
  };
  const std::vector<Case> cases = {
      {GgmlType::Q4_K, random_blocks<BlockQ4_K>(N, K, 1, true), quant::dot_x8_q4_k_gemm, quant::dot_x8_q4_k, nullptr},
      {GgmlType::Q2_K, random_blocks<BlockQ2_K>(N, K, 2, true), quant::dot_x8_q2_k_gemm, quant::dot_x8_q2_k, nullptr},
      {GgmlType::IQ4_XS, random_blocks<BlockIQ4_XS>(N, K, 3, false), quant::dot_iq4_xs, quant::dot_iq4_xs,
       quant::dot_x8_iq4_xs},
  };
  for (const Case& c : cases) {
    const WeightView w{.type = c.type, .data = c.bytes.data(), .n_rows = N, .n_cols = K, .order = DotOrder::Interleaved8};
    // One batch: a chunk of 6 (rows 0-3 in a group of 4, 4-5 not), a lone decode row, a chunk of 9.
    const std::vector<int32_t> chunks = {6, 1, 9};
    const int64_t T = 16;
    const auto x = random_acts(T, K, 7);
    PackedActivations p;
    pack_activations(p, x.data(), T, K, c.type, chunks);
    std::vector<float> y(size_t(T * N));
    matmul(y.data(), N, p, w);
    int orders_differ = 0;
    int64_t t = 0;
    for (const int32_t n : chunks)
      for (int32_t i = 0; i < n; ++i, ++t) {
        const QuantDot want = c.chunk8 && n >= 8 ? c.chunk8 : i < n - n % 4 ? c.group4 : c.rest;
        for (int64_t r = 0; r < N; ++r) {
          const uint8_t* wr = c.bytes.data() + r * w.row_bytes();
          ASSERT_EQ(fp32_to_bits(y[size_t(t * N + r)]), fp32_to_bits(want(wr, p.row(t), K)))
              << ggml_type_name(uint32_t(c.type)) << " chunk of " << n << ", token " << i << ", row " << r;
          orders_differ += fp32_to_bits(c.group4(wr, p.row(t), K)) != fp32_to_bits(c.rest(wr, p.row(t), K)) ||
                           (c.chunk8 && fp32_to_bits(c.chunk8(wr, p.row(t), K)) != fp32_to_bits(c.rest(wr, p.row(t), K)));
        }
      }
    EXPECT_GT(orders_differ, 0) << ggml_type_name(uint32_t(c.type)) << ": the orders never differ, the test shows nothing";
  }
  // The chunks must add up to the rows.
  PackedActivations p;
  const auto x = random_acts(4, K, 1);
  const std::vector<int32_t> bad = {3, 2};
  EXPECT_THROW(pack_activations(p, x.data(), 4, K, GgmlType::Q4_K, bad), InvalidArgument);
}

}  // namespace
}  // namespace ponder
