// sgemm against the float64 triple loop (all transposes, odd shapes, padded leading dimensions,
// alpha/beta), and its determinism: bitwise equal results for any thread count, for a row computed
// alone or inside a large M, and when called from inside a parallel region.
#include "kernels/gemm.h"

#include "core/error.h"

#include <cmath>
#include <cstring>
#include <gtest/gtest.h>
#include <limits>
#include <omp.h>
#include <random>
#include <vector>

namespace ponder {
namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (float& x : v) x = nd(rng);
  return v;
}

// op(A) (M, K), op(B) (K, N), C (M, N) stored row-major with padded leading dimensions.
struct Case {
  bool trans_a, trans_b;
  int64_t M, N, K;
  int64_t pad_a = 0, pad_b = 0, pad_c = 0;  // extra floats per stored row
  float alpha = 1.f, beta = 0.f;
};

struct Operands {
  int64_t lda, ldb, ldc;
  std::vector<float> A, B, C;
};

Operands make_operands(const Case& c, uint32_t seed) {
  Operands o;
  const int64_t a_rows = c.trans_a ? c.K : c.M, a_cols = c.trans_a ? c.M : c.K;
  const int64_t b_rows = c.trans_b ? c.N : c.K, b_cols = c.trans_b ? c.K : c.N;
  o.lda = a_cols + c.pad_a;
  o.ldb = b_cols + c.pad_b;
  o.ldc = c.N + c.pad_c;
  o.A = randn(size_t(std::max<int64_t>(1, a_rows * o.lda)), seed);
  o.B = randn(size_t(std::max<int64_t>(1, b_rows * o.ldb)), seed + 1);
  o.C = randn(size_t(c.M * o.ldc), seed + 2);
  if (c.beta == 0.f)  // must be ignored, not multiplied
    for (float& x : o.C) x = std::numeric_limits<float>::quiet_NaN();
  return o;
}

void run(const Case& c, Operands& o) {
  sgemm(c.trans_a, c.trans_b, c.M, c.N, c.K, c.alpha, o.A.data(), o.lda, o.B.data(), o.ldb, c.beta, o.C.data(), o.ldc);
}

std::string describe(const Case& c) {
  return "ta=" + std::to_string(c.trans_a) + " tb=" + std::to_string(c.trans_b) + " M=" + std::to_string(c.M) +
         " N=" + std::to_string(c.N) + " K=" + std::to_string(c.K) + " alpha=" + std::to_string(c.alpha) +
         " beta=" + std::to_string(c.beta);
}

// Checks c against the float64 reference with a bound of sqrt(K) float roundings of the sum of
// |a||b| (plus the beta term); the padding of C past N must be untouched.
void expect_matches_reference(const Case& c, uint32_t seed) {
  Operands o = make_operands(c, seed);
  Operands ref = o;
  run(c, o);
  sgemm_reference(c.trans_a, c.trans_b, c.M, c.N, c.K, c.alpha, ref.A.data(), ref.lda, ref.B.data(), ref.ldb, c.beta,
                  ref.C.data(), ref.ldc);
  const Operands in = make_operands(c, seed);
  const double eps = std::numeric_limits<float>::epsilon();
  int n_bad = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      double mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = c.trans_a ? in.A[size_t(k * in.lda + i)] : in.A[size_t(i * in.lda + k)];
        const double b = c.trans_b ? in.B[size_t(j * in.ldb + k)] : in.B[size_t(k * in.ldb + j)];
        mag += std::abs(a * b);
      }
      const double old = c.beta == 0.f ? 0.0 : std::abs(double(c.beta) * in.C[size_t(i * in.ldc + j)]);
      const double tol = 2 * eps * (std::sqrt(double(c.K)) + 2) * (std::abs(c.alpha) * mag + old) + 1e-30;
      const float got = o.C[size_t(i * o.ldc + j)], want = ref.C[size_t(i * ref.ldc + j)];
      if (!(std::abs(double(got) - double(want)) <= tol) && n_bad++ < 5)
        ADD_FAILURE() << describe(c) << " at (" << i << ", " << j << "): " << got << " vs " << want << " tol " << tol;
    }
    for (int64_t j = c.N; j < o.ldc; ++j) {
      const float got = o.C[size_t(i * o.ldc + j)], was = in.C[size_t(i * in.ldc + j)];
      if (std::memcmp(&got, &was, sizeof(float)) != 0 && n_bad++ < 5)
        ADD_FAILURE() << describe(c) << ": padding of C row " << i << " changed at column " << j;
    }
  }
}

TEST(Sgemm, TinyAndOddShapesMatchReference) {
  uint32_t seed = 1;
  const int64_t dims[] = {1, 2, 3, 7, 12, 13, 17, 31, 33, 47};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : dims)
        for (int64_t N : {1, 5, 16, 17, 32, 33, 70})
          for (int64_t K : {1, 3, 16, 29}) {
            const Case c{.trans_a = ta, .trans_b = tb, .M = M, .N = N, .K = K, .pad_a = M % 3, .pad_b = N % 2,
                         .pad_c = K % 4};
            expect_matches_reference(c, seed++);
          }
}

TEST(Sgemm, RandomShapesAlphaBetaMatchReference) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int64_t> dim(1, 140), big_k(200, 700), pad(0, 9);
  const float alphas[] = {1.f, -0.5f, 2.f};
  const float betas[] = {0.f, 1.f, -0.75f};
  for (int it = 0; it < 120; ++it) {
    const Case c{.trans_a = bool(it & 1),
                 .trans_b = bool(it & 2),
                 .M = dim(rng),
                 .N = dim(rng),
                 .K = it % 3 == 0 ? big_k(rng) : dim(rng),  // several K blocks
                 .pad_a = pad(rng),
                 .pad_b = pad(rng),
                 .pad_c = pad(rng),
                 .alpha = alphas[it % 3],
                 .beta = betas[(it / 4) % 3]};
    expect_matches_reference(c, uint32_t(1000 + it));
  }
}

// The documented numerics of C[i][j], written out: per K block of 256 an in-order fma chain from
// +0, then C = alpha * acc_0 (beta 0) or fma(alpha, acc_0, beta * C), and C = fma(alpha, acc_p, C)
// for each later block.
float documented_chain(const Case& c, const Operands& in, int64_t i, int64_t j) {
  float out = in.C[size_t(i * in.ldc + j)];
  for (int64_t k0 = 0; k0 < c.K; k0 += 256) {
    float acc = 0.f;
    for (int64_t k = k0; k < std::min<int64_t>(c.K, k0 + 256); ++k) {
      const float a = c.trans_a ? in.A[size_t(k * in.lda + i)] : in.A[size_t(i * in.lda + k)];
      const float b = c.trans_b ? in.B[size_t(j * in.ldb + k)] : in.B[size_t(k * in.ldb + j)];
      acc = std::fma(a, b, acc);
    }
    if (k0 > 0)
      out = std::fma(c.alpha, acc, out);
    else
      out = c.beta == 0.f ? c.alpha * acc : std::fma(c.alpha, acc, c.beta * out);
  }
  return out;
}

// Row i of the result o is the documented chain bit for bit (in: the operands before the call).
void expect_row_is_documented_chain(const Case& c, const Operands& in, const Operands& o, int64_t i) {
  for (int64_t j = 0; j < c.N; ++j) {
    const float got = o.C[size_t(i * o.ldc + j)], want = documented_chain(c, in, i, j);
    ASSERT_EQ(std::memcmp(&got, &want, sizeof(float)), 0)
        << describe(c) << " at (" << i << ", " << j << "): " << got << " vs " << want;
  }
}

// The documented numerics, bit for bit, whichever kernel the build has (AVX-512, AVX2, portable).
TEST(Sgemm, EveryElementIsTheDocumentedFmaChainBitwise) {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int64_t> dim(1, 70);
  for (int it = 0; it < 24; ++it) {
    const Case c{.trans_a = bool(it & 1), .trans_b = bool(it & 2), .M = dim(rng), .N = dim(rng),
                 .K = it % 3 == 0 ? 600 : dim(rng), .pad_a = it % 3, .pad_b = it % 2, .pad_c = 1,
                 .alpha = it % 4 == 0 ? 1.f : -0.75f, .beta = it % 3 == 1 ? 0.f : 0.5f};
    Operands o = make_operands(c, uint32_t(77 + it));
    const Operands in = o;
    run(c, o);
    for (int64_t i = 0; i < c.M; ++i) {
      expect_row_is_documented_chain(c, in, o, i);
      if (HasFatalFailure()) return;
    }
  }
}

// A B too large to stay in L2 (here 2.6 MB) gets taller tasks, and a transposed A is read in place
// over many K blocks: the same documented chain, on rows from every task.
TEST(Sgemm, LargeOperandsFollowTheDocumentedFmaChainBitwise) {
  for (int it = 0; it < 4; ++it) {
    const bool ta = it & 1, tb = it & 2;
    const Case c{.trans_a = ta, .trans_b = tb, .M = 300, .N = 1100, .K = 600, .pad_a = 3, .pad_b = 1, .pad_c = 2,
                 .alpha = -0.75f, .beta = it < 2 ? 0.f : 0.5f};
    Operands o = make_operands(c, uint32_t(300 + it));
    const Operands in = o;
    run(c, o);
    for (int64_t i : {int64_t(0), int64_t(11), int64_t(12), int64_t(155), int64_t(156), int64_t(299)}) {
      expect_row_is_documented_chain(c, in, o, i);
      if (HasFatalFailure()) return;
    }
  }
}

// A weight gradient over many tokens with fewer rows than columns runs as C^T = B^T A into a
// transposed copy of C: the same documented chain for every element, beta applied to the old C (or
// the old C never read), the padding of C untouched.
TEST(Sgemm, TransposedWeightGradientFollowsTheDocumentedFmaChainBitwise) {
  for (float beta : {0.f, 0.5f}) {
    const Case c{.trans_a = true, .trans_b = false, .M = 40, .N = 100, .K = 2100, .pad_a = 3, .pad_b = 1, .pad_c = 2,
                 .alpha = -0.75f, .beta = beta};
    Operands o = make_operands(c, 41);
    const Operands in = o;
    run(c, o);
    for (int64_t i = 0; i < c.M; ++i) {
      expect_row_is_documented_chain(c, in, o, i);
      if (HasFatalFailure()) return;
      for (int64_t j = c.N; j < o.ldc; ++j)
        ASSERT_EQ(std::memcmp(&o.C[size_t(i * o.ldc + j)], &in.C[size_t(i * in.ldc + j)], sizeof(float)), 0)
            << "padding of row " << i << " changed";
    }
  }
}

// sgemm's register tile run by hand over K blocks of 256 (A row-major or transposed, B row-major
// in place or B^T packed panel by panel) gives the bits of one sgemm call over the same product.
TEST(Sgemm, TilesByHandEqualOneCallBitwise) {
  for (int it = 0; it < 4; ++it) {
    const bool ta = it & 1, packed = it & 2;
    const Case c{.trans_a = ta, .trans_b = packed, .M = 29, .N = 45, .K = 600, .pad_a = 3, .pad_b = 1, .pad_c = 2,
                 .alpha = -0.75f, .beta = 0.f};
    Operands o = make_operands(c, 61);
    Operands tiles = o;
    run(c, o);
    std::vector<float> panel(size_t(256) * kSgemmTileCols);
    for (int64_t i0 = 0; i0 < c.M; i0 += kSgemmTileRows)
      for (int64_t j0 = 0; j0 < c.N; j0 += kSgemmTileCols)
        for (int64_t k0 = 0; k0 < c.K; k0 += 256) {
          const int mr = int(std::min<int64_t>(kSgemmTileRows, c.M - i0));
          const int nr = int(std::min<int64_t>(kSgemmTileCols, c.N - j0));
          const int64_t kc = std::min<int64_t>(256, c.K - k0);
          const float* B = tiles.B.data() + k0 * tiles.ldb + j0;
          int64_t ldb = tiles.ldb;
          if (packed) {  // B^T stored (N, K): its rows j0.. packed into (kc, 32)
            sgemm_pack_trans_panel(panel.data(), tiles.B.data() + j0 * tiles.ldb + k0, tiles.ldb, kc, nr);
            for (int64_t k = 0; k < kc; ++k)
              for (int n = 0; n < kSgemmTileCols; ++n)
                ASSERT_EQ(panel[size_t(k * kSgemmTileCols + n)], n < nr ? tiles.B[size_t((j0 + n) * tiles.ldb + k0 + k)] : 0.f);
            B = panel.data();
            ldb = kSgemmTileCols;
          }
          const float* A = tiles.A.data() + (ta ? k0 * tiles.lda + i0 : i0 * tiles.lda + k0);
          sgemm_tile(ta, mr, nr, kc, c.alpha, A, tiles.lda, B, ldb, k0 > 0, tiles.C.data() + i0 * tiles.ldc + j0,
                     tiles.ldc);
        }
    for (int64_t i = 0; i < c.M; ++i)
      ASSERT_EQ(0, std::memcmp(&o.C[size_t(i * o.ldc)], &tiles.C[size_t(i * o.ldc)], size_t(c.N) * sizeof(float)))
          << "row " << i << (ta ? " (A^T)" : "") << (packed ? " (packed B^T)" : "");
  }
}

TEST(Sgemm, ZeroDepthScalesC) {
  for (float beta : {0.f, 1.f, 0.5f}) {
    const Case c{.trans_a = false, .trans_b = false, .M = 3, .N = 5, .K = 0, .pad_c = 2, .beta = beta};
    expect_matches_reference(c, 5);
  }
}

TEST(Sgemm, TrainingShapesMatchReferenceOnSampledRows) {
  // Full-size calls (M = 4096 tokens) checked on a few rows: the reference is too slow for all.
  struct Shape {
    bool ta, tb;
    int64_t M, N, K;
    float beta;
  };
  const Shape shapes[] = {{false, true, 4096, 768, 256, 0.f},  // Y = X W^T
                          {false, false, 4096, 256, 768, 0.f},  // dX = dY W
                          {true, false, 768, 256, 4096, 1.f}};  // dW += dY^T X
  for (const Shape& s : shapes) {
    const Case c{.trans_a = s.ta, .trans_b = s.tb, .M = s.M, .N = s.N, .K = s.K, .beta = s.beta};
    Operands o = make_operands(c, 11);
    const Operands in = o;
    run(c, o);
    for (int64_t i : {int64_t(0), int64_t(13), s.M / 2 + 5, s.M - 1}) {
      std::vector<float> want(in.C.begin() + i * in.ldc, in.C.begin() + (i + 1) * in.ldc);
      const float* a = s.ta ? in.A.data() + i : in.A.data() + i * in.lda;
      sgemm_reference(s.ta, s.tb, 1, s.N, s.K, 1.f, a, in.lda, in.B.data(), in.ldb, s.beta, want.data(), in.ldc);
      for (int64_t j = 0; j < s.N; ++j)
        ASSERT_NEAR(o.C[size_t(i * o.ldc + j)], want[size_t(j)], 2e-3)
            << describe(c) << " at (" << i << ", " << j << ")";
    }
  }
}

// Restores the OpenMP thread count on scope exit.
struct ThreadCountGuard {
  int saved = omp_get_max_threads();
  ~ThreadCountGuard() { omp_set_num_threads(saved); }
};

// A low-rank term (C += alpha2 U op(V) as one more K block per tile) gives the bits of a second
// sgemm call over C, for either op(V), ranks 1..256, any main product (transposes, several K
// blocks, beta, K = 0), padded strides, 1 or 2 threads; the padding of C stays untouched.
TEST(Sgemm, LowRankTermEqualsASecondCallBitwise) {
  ThreadCountGuard guard;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int64_t> dim(1, 90);
  const int64_t ranks[] = {1, 16, 7, 256};
  for (int it = 0; it < 32; ++it) {
    const Case c{.trans_a = bool(it & 1), .trans_b = bool(it & 2), .M = it < 4 ? 300 : dim(rng),
                 .N = it < 4 ? 1100 : dim(rng), .K = it % 8 == 5 ? 0 : it % 3 == 0 ? 600 : dim(rng),
                 .pad_a = it % 3, .pad_b = it % 2, .pad_c = 2, .alpha = 0.7f, .beta = it % 5 == 1 ? 0.f : 1.f};
    const int64_t rank = ranks[it % 4];
    const bool trans_v = it & 4;
    const int64_t ldu = rank + it % 2, ldv = (trans_v ? rank : c.N) + 3;
    const std::vector<float> U = randn(size_t(c.M * ldu), uint32_t(900 + it));
    const std::vector<float> V = randn(size_t((trans_v ? c.N : rank) * ldv), uint32_t(950 + it));
    const LowRankTerm term{.alpha = -1.25f, .U = U.data(), .ldu = ldu, .trans_v = trans_v, .V = V.data(), .ldv = ldv,
                           .rank = rank};
    const Operands in = make_operands(c, uint32_t(500 + it));
    Operands two = in;  // two calls
    run(c, two);
    sgemm(false, trans_v, c.M, c.N, rank, term.alpha, U.data(), ldu, V.data(), ldv, 1.0f, two.C.data(), two.ldc);
    for (int n_threads : {1, 2}) {
      omp_set_num_threads(n_threads);
      Operands one = in;
      sgemm(c.trans_a, c.trans_b, c.M, c.N, c.K, c.alpha, one.A.data(), one.lda, one.B.data(), one.ldb, c.beta,
            one.C.data(), one.ldc, term);
      for (size_t i = 0; i < one.C.size(); ++i)
        ASSERT_EQ(0, std::memcmp(&one.C[i], &two.C[i], sizeof(float)))
            << describe(c) << " rank=" << rank << " trans_v=" << trans_v << " threads=" << n_threads << " at "
            << i / size_t(one.ldc) << ", " << i % size_t(one.ldc);
    }
  }
}

TEST(Sgemm, LowRankTermRankOutOfRangeIsAnError) {
  std::vector<float> A(4, 1.f), B(4, 1.f), C(4, 0.f), U(600, 1.f), V(600, 1.f);
  for (int64_t rank : {0, 257}) {
    const LowRankTerm term{.alpha = 1.f, .U = U.data(), .ldu = 257, .trans_v = false, .V = V.data(), .ldv = 2,
                           .rank = rank};
    EXPECT_THROW(sgemm(false, false, 2, 2, 2, 1.f, A.data(), 2, B.data(), 2, 0.f, C.data(), 2, term),
                 InvalidArgument)
        << "rank " << rank;
  }
}

// A weight gradient over many tokens with more rows than columns (not swapped) runs as one tall
// task per thread (up to 384 rows), each packing its own copy of the B panels (the last one
// partial, N = 70): rows from every task and from the last, partial strip follow the documented
// chain, with 1, 2 and 3 threads.
TEST(SgemmDeterminism, LongTransposedAOneTaskPerThreadFollowsTheDocumentedChain) {
  ThreadCountGuard guard;
  const Case c{.trans_a = true, .trans_b = false, .M = 805, .N = 70, .K = 2100, .pad_a = 3, .pad_b = 1, .pad_c = 2,
               .alpha = -0.75f, .beta = 0.5f};
  const Operands in = make_operands(c, 51);
  for (int n_threads : {1, 2, 3}) {
    omp_set_num_threads(n_threads);
    Operands o = in;
    run(c, o);
    for (int64_t i : {int64_t(0), int64_t(383), int64_t(384), int64_t(402), int64_t(403), int64_t(800), int64_t(804)}) {
      expect_row_is_documented_chain(c, in, o, i);
      if (HasFatalFailure()) return;
    }
  }
}

TEST(SgemmDeterminism, BitwiseEqualAcrossThreadCounts) {
  ThreadCountGuard guard;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.f, 1.f}) {
        const Case c{.trans_a = ta, .trans_b = tb, .M = 301, .N = 157, .K = 600, .pad_a = 3, .pad_c = 1,
                     .alpha = 0.7f, .beta = beta};
        const Operands in = make_operands(c, 21);
        std::vector<float> first;
        for (int n_threads : {1, 2, 3}) {
          omp_set_num_threads(n_threads);
          Operands o = in;
          run(c, o);
          if (first.empty())
            first = o.C;
          else
            ASSERT_EQ(0, std::memcmp(first.data(), o.C.data(), first.size() * sizeof(float)))
                << describe(c) << " threads=" << n_threads;
        }
      }
}

// Every row of a large-M call equals the same row computed alone (M = 1) and in a small batch.
TEST(SgemmDeterminism, RowsAreBatchInvariant) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const Case c{.trans_a = ta, .trans_b = tb, .M = 4096, .N = 67, .K = 300, .pad_b = 5, .beta = 1.f};
      const Operands in = make_operands(c, 31);
      Operands big = in;
      run(c, big);
      for (int64_t i : {0, 1, 11, 12, 500, 4095})
        for (int64_t m : {1, 5}) {
          if (i + m > c.M) continue;
          std::vector<float> small(in.C.begin() + i * in.ldc, in.C.begin() + (i + m) * in.ldc);
          const float* a = ta ? in.A.data() + i : in.A.data() + i * in.lda;
          sgemm(ta, tb, m, c.N, c.K, c.alpha, a, in.lda, in.B.data(), in.ldb, c.beta, small.data(), in.ldc);
          ASSERT_EQ(0, std::memcmp(small.data(), big.C.data() + i * big.ldc, small.size() * sizeof(float)))
              << describe(c) << " rows " << i << ".." << i + m;
        }
    }
}

// Inside a parallel region sgemm runs in the calling thread, with the same bits.
TEST(SgemmDeterminism, SameResultInsideParallelRegion) {
  ThreadCountGuard guard;
  omp_set_num_threads(2);
  const Case c{.trans_a = false, .trans_b = true, .M = 256, .N = 256, .K = 32};
  const Operands in = make_operands(c, 41);
  Operands outside = in;
  run(c, outside);
  std::vector<Operands> inside(4, in);
#pragma omp parallel for schedule(static)
  for (int h = 0; h < 4; ++h) run(c, inside[size_t(h)]);
  for (const Operands& o : inside)
    ASSERT_EQ(0, std::memcmp(outside.C.data(), o.C.data(), o.C.size() * sizeof(float)));
}

}  // namespace
}  // namespace ponder

namespace ponder {
namespace {

// An allocation failure inside sgemm's parallel region reaches the caller as std::bad_alloc
// (never std::terminate), and sgemm works again afterwards.
TEST(SgemmFaults, AllocationFailureInTheParallelRegionIsAnException) {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(2);
  const int64_t M = 300, N = 300, K = 300;  // large enough to run in parallel
  std::vector<float> A(size_t(M * K), 0.5f), B(size_t(K * N), 0.25f), C(size_t(M * N), 0.0f);
  for (int after : {0, 1, 3}) {
    sgemm_fail_allocation_for_testing(after);
    EXPECT_THROW(sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N), std::bad_alloc)
        << "failing task " << after;
    sgemm_fail_allocation_for_testing(-1);
  }
  sgemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  for (float c : C) ASSERT_EQ(c, 0.125f * float(K));
  omp_set_num_threads(saved);
}

}  // namespace
}  // namespace ponder
