#pragma once
// Single-precision GEMM for training: C = alpha * op(A) op(B) + beta * C, row-major, where
// op(X) is X or its transpose. Multi-threaded (OpenMP) over blocks of C; every element of C is
// reduced over K by one thread in one fixed order, so results do not depend on the thread count,
// nor on M or N (a row of C is bitwise the same computed alone or in a batch of 4096).
// beta == 0 overwrites C without reading it (NaN there is ignored). Called from inside an OpenMP
// parallel region it runs single-threaded in the calling thread. Packing buffers are per thread
// and reused: no allocation per call once they have grown.
//
//   Shapes: op(A) (M, K), op(B) (K, N), C (M, N). Leading dimensions are row strides:
//   A is (M, K) with lda >= K when !trans_a, (K, M) with lda >= M when trans_a; likewise B.
#include <cstdint>

namespace ponder {

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// sgemm, then C += alpha2 * U op(V) with U (M, rank) row-major and op(V) (rank, N), rank <= 256:
// computed as one more K block on each tile of C right after its last one, while the tile is in
// cache, so bitwise the same as a second call sgemm(false, trans_v, M, N, rank, alpha2, U, ldu, V,
// ldv, 1, C, ldc) but without that call's pass over C. LoRA's y = x W^T + s (x A^T) B^T and
// dx = dy W + du A.
struct LowRankTerm {
  float alpha;
  const float* U;  // (M, rank), row stride ldu
  int64_t ldu;
  bool trans_v;
  const float* V;  // (rank, N) with row stride ldv, or (N, rank) when trans_v
  int64_t ldv;
  int64_t rank;
};
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const LowRankTerm& term);

// sgemm's register tile, for callers that cut a product themselves (the causal tiles of training
// attention): C (mr, nr) = alpha * acc, or with accumulate C = fma(alpha, acc, C), where acc is the
// in-order fma chain over kc of op(A) (mr, kc) times B (kc, nr; row stride ldb); A is stored
// (mr, kc) with row stride lda, or (kc, mr) when trans_a. Run over K blocks of 256 (the first
// without accumulate) it gives sgemm's bits for the same product (beta 0; accumulate throughout
// for beta 1). mr <= kSgemmTileRows, nr <= kSgemmTileCols; single-threaded, no allocation.
inline constexpr int kSgemmTileRows = 12, kSgemmTileCols = 32;
inline constexpr int kSgemmBlock = 256;  // the K block: fixed, part of the numerics
void sgemm_tile(bool trans_a, int mr, int nr, int64_t kc, float alpha, const float* A, int64_t lda, const float* B,
                int64_t ldb, bool accumulate, float* C, int64_t ldc);

// A B operand for sgemm_tile from the rows of src (B^T): dst (kc, kSgemmTileCols) <- dst[k][n] =
// src[n * lds + k] for n < nr, zeros for n >= nr.
void sgemm_pack_trans_panel(float* dst, const float* src, int64_t lds, int64_t kc, int nr);

// dst (cols, rows) with row stride ldd <- src (rows, cols) with row stride lds, transposed;
// single-threaded, in 16 x 16 register blocks.
void transpose_floats(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols);

// Tests only: after `after` more tasks (blocks of C) have run, the next one throws std::bad_alloc
// where it reserves its per-thread packing buffers, as a failed allocation would; once. A failure
// inside a parallel region (sgemm's own, or a caller's) reaches the caller as that exception,
// never std::terminate. -1: off.
void sgemm_fail_allocation_for_testing(int64_t after);

// The straightforward triple loop (float64 accumulation), for tests.
void sgemm_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                     int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace ponder
