// Blocked single-precision GEMM (the GotoBLAS/BLIS structure, for row-major C):
//
//   * B is packed into panels of (KC, NR) floats (k-major, NR columns per k, zero padded), each
//     panel once per call, on first use, into a buffer all threads share (a long weight
//     gradient's tasks: each its own copy). A is read in place: the micro-kernel broadcasts
//     A[i][k] straight from MR rows (row-major A), or from the MR consecutive floats of row k
//     (trans_a: the weight gradient's dY^T, K = tokens). A transposed A's rows are far apart, so a
//     task over fewer than 2048 tokens prefetches its next K block's rows into L2. (Copying a
//     transposed A into (KC, MR) micro-panels first cost more than it saved: on the 5m training
//     step's weight-gradient products, K = 4096, reading in place ran 1.04-1.2x faster.)
//   * The micro-kernel computes an (mr <= MR = 12, NR = 32) tile of C in 2 * mr zmm accumulators
//     over one K block: acc = fma(A[i][k], B[k][j], acc) for k in the block, in order.
//   * Work is split into tasks of (strips of MR rows) x (panels of NR columns) of C, scheduled
//     dynamically; a task walks K blocks outermost, so its C block and the current B block stay
//     in L2, and within a block keeps a strip of A in cache while B panels stream past it.
//
// Determinism: K is cut into fixed blocks of KC = 256, and every element of C is
//   C = alpha * acc_0 + beta * C   (C = alpha * acc_0 when beta == 0: old C is never read)
//   C = fma(alpha, acc_p, C)       for p = 1, 2, ...
// where acc_p is the in-order fma chain over block p; a low-rank term (LowRankTerm) is one more
// block after the last, C = fma(alpha2, acc_term, C). This depends on K only: not on the tile
// the element lands in (every mr runs the same chain per row), the task grid, the thread count,
// M or N, whether a B panel was packed or read in place, or whether the product ran transposed
// (C^T = B^T A for a weight gradient's shape: the same products, fma(a, b, acc) == fma(b, a, acc)).
// K is never split across threads.
#include "kernels/gemm.h"

#include "core/error.h"
#include "core/parallel.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#define PONDER_GEMM_AVX512 1
#define PONDER_GEMM_AVX2 0
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PONDER_GEMM_AVX512 0
#define PONDER_GEMM_AVX2 1
#else
#define PONDER_GEMM_AVX512 0
#define PONDER_GEMM_AVX2 0
#endif

namespace ponder {
namespace {

constexpr int kMR = 12;         // rows of a micro-tile (register blocking over M)
constexpr int kNR = 32;         // columns of a micro-tile: two zmm
// The micro-kernel prefetches B this many k steps ahead into L1 (see tile_kernel).
constexpr int64_t kPrefetchB = 8;
constexpr int64_t kKC = kSgemmBlock;  // K block: fixed, part of the numerics
constexpr int kMaxStrips = 8;   // strips of kMR rows per task at most (MC = 96; 3x for a streamed B, 4x for a long trans_a)
constexpr int kMaxPanels = 16;  // panels of kNR columns per task at most (NC = 512)
constexpr int64_t kDirectBMaxM = 4 * kMR;  // below this many rows of a row-major A, a row-major B is read in place
constexpr double kStreamedBBytes = 2 << 20;  // a B larger than this does not stay in L2 across tasks
constexpr double kSwappedCMaxBytes = 2 << 20;  // swap_operands: a larger C costs more to transpose than it saves
// M*N*K under which one thread does it all (~20 us): a parallel region costs little on idle cores,
// but milliseconds when another process holds one of them and the region has to wait for it. (At
// 1 << 23 LoRA's rank-16 products over 512 tokens, 7.3M, ran on one thread at 20-110 GFLOP/s.)
constexpr double kSerialWork = 1 << 21;

std::atomic<int64_t> g_fail_countdown{-1};  // sgemm_fail_allocation_for_testing: tasks until one fails

// A 64-byte aligned float buffer that only grows; one per thread (thread_local) so steady-state
// calls do not allocate.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }
  float* reserve(size_t n) {
    if (n > size_) {
      release();
      data_ = static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t(64)));
      size_ = n;
    }
    return data_;
  }

 private:
  void release() {
    if (data_) ::operator delete[](data_, std::align_val_t(64));
    data_ = nullptr;
    size_ = 0;
  }
  float* data_ = nullptr;
  size_t size_ = 0;
};

struct Problem {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha, beta;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float* C;
  int64_t ldc;
};

// How a call is cut: strips of kMR rows, panels of kNR columns, blocks of kKC depth; tasks of
// strips_per_task x panels_per_task.
struct Grid {
  int64_t n_strips, n_panels, n_kb;
  int64_t strips_per_task, panels_per_task, n_mb, n_nb;
  bool columns_outer;  // task order: every row block of a column block before the next column block
  bool pack_b;
  bool private_b;    // each task packs the B panels it uses into a buffer of its own thread, per K block
  bool prefetch_a;   // trans_a: a task prefetches its next K block of A (prefetch_rows)
  float* bp;         // packed B: (n_kb, n_panels, kKC, kNR) when pack_b
  int* panel_state;  // (n_kb, n_panels): kPanelEmpty, kPanelPacking or kPanelReady
  const LowRankTerm* term;  // or null
  float* term_vp;           // the term's op(V) packed: (n_panels, rank, kNR)
};

constexpr int kPanelEmpty = 0, kPanelPacking = 1, kPanelReady = 2;

// One micro-tile: C[0:mr, 0:nr] (+)= alpha * A-block * B-block over kc.
struct Tile {
  const float* a;  // row i, k at a[i * lda + k]; trans_a: at a[k * lda + i]
  int64_t lda;
  const float* b;  // (kc, nr) with row stride ldb (kNR when packed, zero padded)
  int64_t ldb;
  float* c;  // (mr, nr), row stride ldc
  int64_t ldc;
  int64_t kc;
  int nr;
  float alpha, beta;
  bool first;  // first K block: apply beta
};

#if PONDER_GEMM_AVX512

inline __mmask16 lane_mask(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// kVecs zmm per row: 2 (up to 32 columns), or 1 for a tile of at most 16 (LoRA's rank-16
// products x A^T, dy B, dy^T u), which would otherwise spend half its multiply-adds on the zero
// padding. Every element gets the same chain and epilogue either way, so the same bits.
template <int MR, bool kTransA, int kVecs>
void tile_kernel(const Tile& t) {
  static_assert(kVecs == 1 || kVecs == 2);
  const __mmask16 m0 = lane_mask(t.nr), m1 = lane_mask(std::max(t.nr - 16, 0));
  // The accumulators must live in registers: every loop over i is fully unrolled.
  __m512 c0[MR], c1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) c0[i] = c1[i] = _mm512_setzero_ps();
  const float* b = t.b;
  const int64_t lda = t.lda, ldb = t.ldb, kc = t.kc;
  // A row-major A is read through one pointer per 3 rows, rows at +0, +lda and +2 lda of it
  // (scaled-index addresses): with 12 row offsets (i * lda) GCC ran out of general registers and
  // moved two of them back from vector registers on every k step.
  constexpr int kBases = kTransA ? 1 : (MR + 2) / 3;
  const float* ap[kBases];
#pragma GCC unroll 16
  for (int j = 0; j < kBases; ++j) ap[j] = t.a + (kTransA ? 0 : 3 * j * lda);
  // B's row kPrefetchB steps ahead is fetched into L1 (its two cache lines): a packed panel comes
  // from L2, and the hardware prefetcher left the kernel waiting on it. Same-process A/B on the
  // training shapes (two threads): Qwen2-0.5B's 1.05-1.14x, the 5m preset's forward and dX
  // 1.02-1.06x, its weight gradients unchanged; 8 steps ahead ran as well as 16 or 32. Past the
  // panel's end it fetches the next panel's first rows (a call's packed panels lie end to end);
  // the address is computed as an integer, as it may lie past B's end (a prefetch never faults).
  const uintptr_t ahead = uintptr_t(kPrefetchB * ldb) * sizeof(float);
  for (int64_t k = 0; k < kc; ++k) {
    const uintptr_t next = reinterpret_cast<uintptr_t>(b) + ahead;
    _mm_prefetch(reinterpret_cast<const char*>(next), _MM_HINT_T0);
    if constexpr (kVecs == 2) _mm_prefetch(reinterpret_cast<const char*>(next + 16 * sizeof(float)), _MM_HINT_T0);
    const __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
    const __m512 b1 = kVecs == 2 ? _mm512_maskz_loadu_ps(m1, b + 16) : b0;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(kTransA ? ap[0][i] : ap[i / 3][(i % 3) * lda]);
      c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
      if constexpr (kVecs == 2) c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
    }
#pragma GCC unroll 16
    for (int j = 0; j < kBases; ++j) ap[j] += kTransA ? lda : 1;
    b += ldb;
  }
  // The epilogue (see the numerics at the top), chosen once per tile: one straight run of loads,
  // multiply-adds and stores, unmasked when the tile is full width. (It had a branch on t per
  // store, t re-read after each one since a store to C might alias it: same-process A/B on the
  // training shapes, 1.04-1.07x on one thread for the 5m products, 1.00-1.06x on two.)
  const __m512 va = _mm512_set1_ps(t.alpha), vb = _mm512_set1_ps(t.beta);
  float* const c = t.c;
  const int64_t ldc = t.ldc;
  auto finish = [&](auto mode, auto full) {
    auto load = [&](const float* p, __mmask16 m) {
      if constexpr (full) return _mm512_loadu_ps(p);
      else return _mm512_maskz_loadu_ps(m, p);
    };
    // C = fma(alpha, acc, C) (mode 0: a later K block), alpha * acc (1: first, beta 0) or
    // fma(alpha, acc, beta * C) (2: first)
    auto put = [&](float* p, __mmask16 m, __m512 acc) {
      __m512 r;
      if constexpr (mode == 0) r = _mm512_fmadd_ps(va, acc, load(p, m));
      else if constexpr (mode == 1) r = _mm512_mul_ps(va, acc);
      else r = _mm512_fmadd_ps(va, acc, _mm512_mul_ps(vb, load(p, m)));
      if constexpr (full) _mm512_storeu_ps(p, r);
      else _mm512_mask_storeu_ps(p, m, r);
    };
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      put(c + i * ldc, m0, c0[i]);
      if constexpr (kVecs == 2) put(c + i * ldc + 16, m1, c1[i]);
    }
  };
  auto finish_width = [&](auto mode) {
    if (t.nr == 16 * kVecs) finish(mode, std::true_type{});
    else finish(mode, std::false_type{});
  };
  if (!t.first) finish_width(std::integral_constant<int, 0>{});
  else if (t.beta == 0.0f) finish_width(std::integral_constant<int, 1>{});
  else finish_width(std::integral_constant<int, 2>{});
}

using TileFn = void (*)(const Tile&);

template <bool kTransA, int kVecs, int... I>
constexpr auto make_tile_table(std::integer_sequence<int, I...>) {
  return std::array<TileFn, sizeof...(I)>{&tile_kernel<I + 1, kTransA, kVecs>...};
}
constexpr auto kTilesRowA = make_tile_table<false, 2>(std::make_integer_sequence<int, kMR>());
constexpr auto kTilesTransA = make_tile_table<true, 2>(std::make_integer_sequence<int, kMR>());
constexpr auto kNarrowTilesRowA = make_tile_table<false, 1>(std::make_integer_sequence<int, kMR>());
constexpr auto kNarrowTilesTransA = make_tile_table<true, 1>(std::make_integer_sequence<int, kMR>());

void run_tile(const Tile& t, int mr, bool trans_a) {
  if (t.nr <= 16)
    (trans_a ? kNarrowTilesTransA : kNarrowTilesRowA)[mr - 1](t);
  else
    (trans_a ? kTilesTransA : kTilesRowA)[mr - 1](t);
}

// dst (kc, kNR) <- src rows k (stride ldb), nr floats each, zero padded.
void pack_b_rows(float* dst, const float* src, int64_t ldb, int64_t kc, int nr) {
  const __mmask16 m0 = lane_mask(nr), m1 = lane_mask(std::max(nr - 16, 0));
  // The rows are ldb apart (a weight's rows: kilobytes): fetch 16 rows ahead, both cache lines.
  constexpr int64_t kAhead = 16;
  for (int64_t k = 0; k < kc; ++k) {
    if (k + kAhead < kc) {
      _mm_prefetch(reinterpret_cast<const char*>(src + (k + kAhead) * ldb), _MM_HINT_T0);
      if (nr > 16) _mm_prefetch(reinterpret_cast<const char*>(src + (k + kAhead) * ldb + 16), _MM_HINT_T0);
    }
    _mm512_store_ps(dst + k * kNR, _mm512_maskz_loadu_ps(m0, src + k * ldb));
    _mm512_store_ps(dst + k * kNR + 16, _mm512_maskz_loadu_ps(m1, src + k * ldb + 16));
  }
}

// In-register transpose of a 16x16 block: r[i][j] -> r[j][i].
[[gnu::always_inline]] inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  __m512 u[16];  // u[4g + c], 128-bit lane L: column 4L + c of rows 4g..4g+3
  for (int g = 0; g < 4; ++g) {
    const __m512d t0 = _mm512_castps_pd(t[4 * g]), t1 = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d t2 = _mm512_castps_pd(t[4 * g + 2]), t3 = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 x0 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 x1 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
    const __m512 y0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
    const __m512 y1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
    r[c] = _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(2, 0, 2, 0));
    r[8 + c] = _mm512_shuffle_f32x4(x0, y0, _MM_SHUFFLE(3, 1, 3, 1));
    r[4 + c] = _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(2, 0, 2, 0));
    r[12 + c] = _mm512_shuffle_f32x4(x1, y1, _MM_SHUFFLE(3, 1, 3, 1));
  }
}

// dst (kc, kNR) <- columns k of src rows n < nr (stride ldb), zero padded: dst[k][n] = src[n][k].
void pack_b_trans(float* dst, const float* src, int64_t ldb, int64_t kc, int nr) {
  for (int h = 0; h < kNR / 16; ++h)
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int64_t kk = std::min<int64_t>(16, kc - k0);
      const __mmask16 m = lane_mask(kk);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const int n = 16 * h + i;
        r[i] = n < nr ? _mm512_maskz_loadu_ps(m, src + n * ldb + k0) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int64_t i = 0; i < kk; ++i) _mm512_storeu_ps(dst + (k0 + i) * kNR + 16 * h, r[i]);  // sgemm_pack_trans_panel's dst may be unaligned
    }
}

#else

#if PONDER_GEMM_AVX2
// AVX2 (16 registers): a micro-tile runs as sub-tiles of up to kSubRows rows by 16 columns (12
// accumulators, two B vectors, one broadcast), each over the whole K block: per element the same
// in-order fma chain and the same epilogue as the AVX-512 kernel, so the same bits.
constexpr int kSubRows = 6;

// Lanes below n (n may be <= 0 or >= 8) as a maskload/maskstore mask.
inline __m256i lane_mask8(int64_t n) {
  const int m = int(std::clamp<int64_t>(n, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Rows i0..i0+R-1, columns j0..j0+15 (those below t.nr) of the tile.
template <int R, bool kTransA>
void sub_tile(const Tile& t, int i0, int j0) {
  const int64_t n_cols = t.nr - j0;
  const bool full = n_cols >= 16;
  const __m256i m0 = lane_mask8(n_cols), m1 = lane_mask8(n_cols - 8);
  __m256 c0[R], c1[R];
  for (int i = 0; i < R; ++i) c0[i] = c1[i] = _mm256_setzero_ps();
  const float* a = kTransA ? t.a + i0 : t.a + i0 * t.lda;
  const float* b = t.b + j0;
  const int64_t lda = t.lda, ldb = t.ldb, kc = t.kc;
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = full ? _mm256_loadu_ps(b) : _mm256_maskload_ps(b, m0);
    const __m256 b1 = full ? _mm256_loadu_ps(b + 8) : _mm256_maskload_ps(b + 8, m1);
    for (int i = 0; i < R; ++i) {
      const __m256 av = _mm256_set1_ps(kTransA ? a[i] : a[i * lda]);
      c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
    }
    a += kTransA ? lda : 1;
    b += ldb;
  }
  // Masked moves only at the right edge (they are slow: microcoded stores on some CPUs).
  auto load_c = [&](const float* c, __m256i m) { return full ? _mm256_loadu_ps(c) : _mm256_maskload_ps(c, m); };
  const __m256 va = _mm256_set1_ps(t.alpha), vb = _mm256_set1_ps(t.beta);
  for (int i = 0; i < R; ++i) {
    float* c = t.c + (i0 + i) * t.ldc + j0;
    __m256 r0, r1;
    if (!t.first) {
      r0 = _mm256_fmadd_ps(va, c0[i], load_c(c, m0));
      r1 = _mm256_fmadd_ps(va, c1[i], load_c(c + 8, m1));
    } else if (t.beta == 0.0f) {
      r0 = _mm256_mul_ps(va, c0[i]);
      r1 = _mm256_mul_ps(va, c1[i]);
    } else {
      r0 = _mm256_fmadd_ps(va, c0[i], _mm256_mul_ps(vb, load_c(c, m0)));
      r1 = _mm256_fmadd_ps(va, c1[i], _mm256_mul_ps(vb, load_c(c + 8, m1)));
    }
    if (full) {
      _mm256_storeu_ps(c, r0);
      _mm256_storeu_ps(c + 8, r1);
    } else {
      _mm256_maskstore_ps(c, m0, r0);
      _mm256_maskstore_ps(c + 8, m1, r1);
    }
  }
}

using SubTileFn = void (*)(const Tile&, int, int);

template <bool kTransA, int... I>
constexpr auto make_sub_tile_table(std::integer_sequence<int, I...>) {
  return std::array<SubTileFn, sizeof...(I)>{&sub_tile<I + 1, kTransA>...};
}
constexpr auto kSubTilesRowA = make_sub_tile_table<false>(std::make_integer_sequence<int, kSubRows>());
constexpr auto kSubTilesTransA = make_sub_tile_table<true>(std::make_integer_sequence<int, kSubRows>());

void run_tile(const Tile& t, int mr, bool trans_a) {
  const auto& table = trans_a ? kSubTilesTransA : kSubTilesRowA;
  for (int i0 = 0; i0 < mr; i0 += kSubRows)
    for (int j0 = 0; j0 < t.nr; j0 += 16) table[std::min(kSubRows, mr - i0) - 1](t, i0, j0);
}

#else  // portable path: the same blocking and the same order of operations, one float at a time

void run_tile(const Tile& t, int mr, bool trans_a) {
  float acc[kMR][kNR] = {};
  for (int64_t k = 0; k < t.kc; ++k) {
    const float* b = t.b + k * t.ldb;
    for (int i = 0; i < mr; ++i) {
      const float a = trans_a ? t.a[k * t.lda + i] : t.a[i * t.lda + k];
      for (int j = 0; j < t.nr; ++j) acc[i][j] = std::fma(a, b[j], acc[i][j]);
    }
  }
  for (int i = 0; i < mr; ++i) {
    float* c = t.c + i * t.ldc;
    for (int j = 0; j < t.nr; ++j) {
      if (!t.first)
        c[j] = std::fma(t.alpha, acc[i][j], c[j]);
      else if (t.beta == 0.0f)
        c[j] = t.alpha * acc[i][j];
      else
        c[j] = std::fma(t.alpha, acc[i][j], t.beta * c[j]);
    }
  }
}

#endif

void pack_b_rows(float* dst, const float* src, int64_t ldb, int64_t kc, int nr) {
  for (int64_t k = 0; k < kc; ++k)
    for (int j = 0; j < kNR; ++j) dst[k * kNR + j] = j < nr ? src[k * ldb + j] : 0.0f;
}

void pack_b_trans(float* dst, const float* src, int64_t ldb, int64_t kc, int nr) {
  for (int64_t k = 0; k < kc; ++k)
    for (int j = 0; j < kNR; ++j) dst[k * kNR + j] = j < nr ? src[j * ldb + k] : 0.0f;
}

#endif

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// dst (cols, rows) with row stride ldd <- src (rows, cols) with row stride lds, transposed.
void transpose_matrix(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  for (int64_t r0 = 0; r0 < rows; r0 += 16)
    for (int64_t c0 = 0; c0 < cols; c0 += 16) {
      const int64_t nr = std::min<int64_t>(16, rows - r0), nc = std::min<int64_t>(16, cols - c0);
#if PONDER_GEMM_AVX512
      const __mmask16 mc = lane_mask(nc), mr = lane_mask(nr);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < nr ? _mm512_maskz_loadu_ps(mc, src + (r0 + i) * lds + c0) : _mm512_setzero_ps();
      transpose16(r);
      for (int j = 0; j < nc; ++j) _mm512_mask_storeu_ps(dst + (c0 + j) * ldd + r0, mr, r[j]);
#else
      for (int64_t j = 0; j < nc; ++j)
        for (int64_t i = 0; i < nr; ++i) dst[(c0 + j) * ldd + r0 + i] = src[(r0 + i) * lds + c0 + j];
#endif
    }
}

// Splits n items into the fewest groups of at most max_per_group, evenly; returns the group size.
int64_t even_group(int64_t n, int64_t max_per_group) { return ceil_div(n, ceil_div(n, max_per_group)); }

Grid make_grid(const Problem& p, int n_threads) {
  Grid g{};
  g.n_strips = ceil_div(p.M, kMR);
  g.n_panels = ceil_div(p.N, kNR);
  g.n_kb = ceil_div(p.K, kKC);
  // A row-major B is read in place only under a few rows of a row-major A (decode): with trans_a
  // (a gradient over tokens, B = activations) its rows are far apart and latency-bound in place;
  // packed, LoRA's dA products (16 x 896 x 512) ran 2.1-2.3x faster.
  g.pack_b = p.trans_b || p.trans_a || p.M > kDirectBMaxM;
  // Over a long K (thousands of features or tokens) a task takes half the panels (NC = 256): its
  // packed B block (kKC x NC, 256 KB) then stays in L2 beside its C block through the many K
  // blocks. Same-process A/B on the 0.5B training shapes: the FFN down product (K 4864) 1.14-1.21x,
  // its dX (K 4864) 1.00-1.18x, the head's dX pieces (K 4096) 1.04-1.12x; at K <= 896 no gain.
  // A B too large to stay in L2 across tasks (a weight matrix of a large model times a few hundred
  // token rows) comes from memory once per row block of tasks: taller tasks (MC = 288) load each
  // B block into L2 a third as often. Same-process A/B, weights cycling through memory as in a
  // training step, on the 0.5B shapes with 512 tokens: 1.02-1.25x (FFN, attention and head
  // products; forward and dX); a B that stays in L2 (the 5m preset's) gains nothing, so it keeps MC = 96.
  // A weight gradient over many tokens (trans_a, K >= 2048: B = the activations, 256 KB per K
  // block, packed by whichever task comes first) reads each B block from another core's cache or
  // L3 on its first strip and from L2 on the others: tall tasks (MC = 384) and only one per
  // thread, the split falling on the columns, make those far reads 4x rarer. Same-process A/B
  // with cold operands on the 5m preset's dW products (4096 tokens): FFN gate/up and down
  // 1.24-1.32x, q/o 1.14-1.17x, k/v 1.24-1.31x; with 2 tasks per thread instead (both splits
  // tried) only 1.05-1.16x.
  const bool long_trans_a = p.trans_a && p.K >= 2048;
  const bool streamed_b = !p.trans_a && double(p.K) * double(p.N) * sizeof(float) > kStreamedBBytes;
  const int64_t max_strips = streamed_b ? 3 * kMaxStrips : long_trans_a ? 4 * kMaxStrips : kMaxStrips;
  const int64_t max_panels = streamed_b || p.K >= 2048 ? kMaxPanels / 2 : kMaxPanels;
  int64_t spt = even_group(g.n_strips, max_strips), ppt = even_group(g.n_panels, max_panels);
  // Enough tasks for dynamic scheduling to absorb a busy core: halve the longer side of the block
  // (a long trans_a's columns).
  const int64_t want = n_threads > 1 ? (long_trans_a ? 1 : 3) * n_threads : 1;
  while (ceil_div(g.n_strips, spt) * ceil_div(g.n_panels, ppt) < want && (spt > 1 || ppt > 1)) {
    if (ppt == 1 || (spt > 1 && !long_trans_a && spt * kMR >= ppt * kNR))
      spt = ceil_div(spt, 2);
    else
      ppt = ceil_div(ppt, 2);
  }
  g.strips_per_task = spt;
  g.panels_per_task = ppt;
  g.n_mb = ceil_div(g.n_strips, spt);
  g.n_nb = ceil_div(g.n_panels, ppt);
  // A long trans_a's tasks split on the rows need every B panel of every K block, and with the
  // panels shared each read the half the other thread packed from that core's cache: packing its
  // own copy (the block's 256 KB of activations, a few percent of the block's time) ran
  // 1.05-1.11x on the 5m preset's FFN dW products (sgemm_ab.sh, cold operands). Split on the
  // columns nothing is shared.
  g.private_b = long_trans_a && g.n_mb > 1;
  // A long trans_a task's C block (up to 384 x 256), B block and A block fill L2: prefetching the
  // next A block on top evicted them. Without it the 5m dW products ran 1.01-1.12x (FFN 1.06-1.12x);
  // shorter K (LoRA's dA, dB over 512 tokens; the 0.5B dW) keeps it.
  g.prefetch_a = p.trans_a && !long_trans_a;
  // Consecutive tasks share the larger operand's block, so it is read from memory once and from
  // the shared cache after that: with B (K x N) larger than A (M x K), i.e. N > M (a weight matrix
  // times a few hundred rows), a column block's tasks run one after another; otherwise a row block's.
  g.columns_outer = p.N > p.M;
  return g;
}

// Prefetches rows [r0, r1) of a transposed A block (row_bytes from src on each, rows lda apart)
// into L2. The rows are a page or more apart, out of the hardware prefetcher's reach, so a task
// fetches its next K block this way, a few rows per tile, while it computes the current one.
void prefetch_rows(const float* src, int64_t lda, int64_t r0, int64_t r1, int64_t row_bytes) {
  for (int64_t r = r0; r < r1; ++r) {
    const char* row = reinterpret_cast<const char*>(src + r * lda);
    for (int64_t byte = 0; byte < row_bytes + 63; byte += 64)
      __builtin_prefetch(row + std::min(byte, row_bytes - 1), 0, 2);  // 2: into L2
  }
}

// Packs the (K block kb, column panel jr) panel of B into dst (kKC, kNR).
void pack_b_panel(float* dst, const Problem& p, int64_t kb, int64_t jr) {
  const int64_t k0 = kb * kKC, kc = std::min(kKC, p.K - k0), j0 = jr * kNR;
  const int nr = int(std::min<int64_t>(kNR, p.N - j0));
  if (p.trans_b)
    pack_b_trans(dst, p.B + j0 * p.ldb + k0, p.ldb, kc, nr);
  else
    pack_b_rows(dst, p.B + k0 * p.ldb + j0, p.ldb, kc, nr);
}

// The packed (kb, jr) panel of B. Panels are packed on first use by whichever thread gets there
// first, so there is no barrier between packing and computing for a descheduled thread to hold
// up; a thread that finds a panel being packed by another packs a private copy into scratch
// rather than wait. Both copies hold the same values, so the results do not change.
const float* packed_b_panel(const Problem& p, const Grid& g, int64_t kb, int64_t jr, float* scratch) {
  const int64_t index = kb * g.n_panels + jr;
  float* shared = g.bp + index * kKC * kNR;
  std::atomic_ref<int> state(g.panel_state[index]);
  int seen = state.load(std::memory_order_acquire);
  if (seen == kPanelReady) return shared;
  if (seen == kPanelEmpty &&
      state.compare_exchange_strong(seen, kPanelPacking, std::memory_order_acquire, std::memory_order_acquire)) {
    pack_b_panel(shared, p, kb, jr);
    state.store(kPanelReady, std::memory_order_release);
    return shared;
  }
  if (seen == kPanelReady) return shared;
  pack_b_panel(scratch, p, kb, jr);
  return scratch;
}

// Computes the C block of task `index` over all of K.
void run_task(const Problem& p, const Grid& g, int64_t index) {
  thread_local Buffer b_scratch;
  if (g_fail_countdown.load(std::memory_order_relaxed) >= 0 && g_fail_countdown.fetch_sub(1) == 0)
    throw std::bad_alloc();  // sgemm_fail_allocation_for_testing
  float* bs = b_scratch.reserve(size_t(kKC * kNR));
  const int64_t mb = g.columns_outer ? index % g.n_mb : index / g.n_nb;
  const int64_t nb = g.columns_outer ? index / g.n_mb : index % g.n_nb;
  const int64_t s_begin = mb * g.strips_per_task, s_end = std::min(g.n_strips, s_begin + g.strips_per_task);
  const int64_t j_begin = nb * g.panels_per_task, j_end = std::min(g.n_panels, j_begin + g.panels_per_task);
  const int64_t a_row_bytes = std::min(p.M - s_begin * kMR, (s_end - s_begin) * kMR) * int64_t(sizeof(float));
  const int64_t n_tiles = (s_end - s_begin) * (j_end - j_begin);
  thread_local Buffer private_b;
  float* own_b = g.private_b ? private_b.reserve(size_t((j_end - j_begin) * kKC * kNR)) : nullptr;
  for (int64_t kb = 0; kb < g.n_kb; ++kb) {
    const int64_t k0 = kb * kKC, kc = std::min(kKC, p.K - k0);
    if (own_b)
      for (int64_t jr = j_begin; jr < j_end; ++jr) pack_b_panel(own_b + (jr - j_begin) * kKC * kNR, p, kb, jr);
    // trans_a: the task's columns of A's rows k0 .. k0 + kc
    const float* a_block = p.trans_a ? p.A + k0 * p.lda + s_begin * kMR : nullptr;
    const int64_t n_next = g.prefetch_a ? std::max<int64_t>(0, std::min(kKC, p.K - k0 - kKC)) : 0;
    // A strip's rows stay in cache while the B panels stream past them from L2 (BLIS order for a
    // broadcast A).
    int64_t tile = 0;
    for (int64_t s = s_begin; s < s_end; ++s) {
      const int64_t i0 = s * kMR;
      const int mr = int(std::min<int64_t>(kMR, p.M - i0));
      for (int64_t jr = j_begin; jr < j_end; ++jr, ++tile) {
        const int64_t j0 = jr * kNR;
        if (n_next > 0)
          prefetch_rows(a_block + kKC * p.lda, p.lda, tile * n_next / n_tiles, (tile + 1) * n_next / n_tiles,
                        a_row_bytes);
        const Tile t{.a = p.trans_a ? a_block + (s - s_begin) * kMR : p.A + i0 * p.lda + k0,
                     .lda = p.lda,
                     .b = own_b      ? own_b + (jr - j_begin) * kKC * kNR
                          : g.pack_b ? packed_b_panel(p, g, kb, jr, bs)
                                     : p.B + k0 * p.ldb + j0,
                     .ldb = g.pack_b ? kNR : p.ldb,
                     .c = p.C + i0 * p.ldc + j0,
                     .ldc = p.ldc,
                     .kc = kc,
                     .nr = int(std::min<int64_t>(kNR, p.N - j0)),
                     .alpha = p.alpha,
                     .beta = p.beta,
                     .first = kb == 0};
        run_tile(t, mr, p.trans_a);
        if (g.term && kb + 1 == g.n_kb) {  // the low-rank term: one more K block on the tile just finished
          const LowRankTerm& e = *g.term;
          const Tile te{.a = e.U + i0 * e.ldu, .lda = e.ldu, .b = g.term_vp + jr * e.rank * kNR, .ldb = kNR,
                        .c = t.c, .ldc = t.ldc, .kc = e.rank, .nr = t.nr, .alpha = e.alpha, .beta = 1.0f,
                        .first = false};
          run_tile(te, mr, false);
        }
      }
    }
  }
}

// A weight gradient over many tokens (trans_a, K >= 2048) with fewer output rows than input
// columns (the 5m preset's FFN down dW, 256 x 768 x 4096 tokens, and its k/v dW, 128 x 256)
// packs the wider operand as B and amortizes each packed float over only M rows. Computed as C^T =
// B^T A, the narrower operand is packed and the wider one read in place: same-process A/B on those
// shapes with cold operands, 1.14-1.26x and 1.12-1.24x; the Qwen2-0.5B k/v dW over 4096 tokens
// (128 x 896) 1.12-1.16x. A large C loses to its two transposes (896 x 4864: 0.66-0.88x), so C is
// held to 2 MB.
bool swap_operands(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K) {
  return trans_a && !trans_b && M < N && K >= 2048 && double(M) * double(N) * sizeof(float) <= kSwappedCMaxBytes;
}

}  // namespace

void sgemm_reference(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += double(ta ? A[k * lda + i] : A[i * lda + k]) * double(tb ? B[j * ldb + k] : B[k * ldb + j]);
      C[i * ldc + j] = float(alpha * s + (beta == 0 ? 0.0 : double(beta) * C[i * ldc + j]));
    }
}

namespace {

void sgemm_impl(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const LowRankTerm* term) {
  if (M <= 0 || N <= 0) return;
  assert(ldc >= N);
  if (K <= 0) {  // no products: C = beta * C
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[i * ldc + j];
    if (term) sgemm_impl(false, term->trans_v, M, N, term->rank, term->alpha, term->U, term->ldu, term->V, term->ldv,
                         1.0f, C, ldc, nullptr);
    return;
  }
  assert(lda >= (trans_a ? M : K) && ldb >= (trans_b ? K : N));
  if (!term && swap_operands(trans_a, trans_b, M, N, K)) {
    // C^T = B^T A: the same products and sums per element (fma(a, b, acc) == fma(b, a, acc)), so
    // the same bits, computed into a transposed copy of C.
    thread_local Buffer ct_buffer;
    float* ct = ct_buffer.reserve(size_t(N * M));
    if (beta != 0.0f) transpose_matrix(ct, M, C, ldc, M, N);
    sgemm_impl(true, false, N, M, K, alpha, B, ldb, A, lda, beta, ct, M, nullptr);
    transpose_matrix(C, ldc, ct, M, N, M);
    return;
  }
  const Problem p{.trans_a = trans_a, .trans_b = trans_b, .M = M, .N = N, .K = K, .alpha = alpha, .beta = beta,
                  .A = A, .lda = lda, .B = B, .ldb = ldb, .C = C, .ldc = ldc};
  const bool serial = omp_in_parallel() || double(M) * double(N) * double(K) < kSerialWork;
  const int n_threads = serial ? 1 : omp_get_max_threads();
  Grid g = make_grid(p, n_threads);
  // The calling thread's buffers; its workers share them for this call.
  thread_local Buffer b_buffer;
  thread_local std::vector<int> panel_state;
  if (g.pack_b && !g.private_b) {
    g.bp = b_buffer.reserve(size_t(g.n_kb * g.n_panels * kKC * kNR));
    panel_state.assign(size_t(g.n_kb * g.n_panels), kPanelEmpty);
    g.panel_state = panel_state.data();
  }
  if (term) {  // its op(V) is small (rank x N): packed whole, here
    thread_local Buffer term_buffer;
    g.term = term;
    g.term_vp = term_buffer.reserve(size_t(g.n_panels * term->rank * kNR));
    for (int64_t jr = 0; jr < g.n_panels; ++jr) {
      const int64_t j0 = jr * kNR;
      const int nr = int(std::min<int64_t>(kNR, N - j0));
      float* dst = g.term_vp + jr * term->rank * kNR;
      if (term->trans_v)
        pack_b_trans(dst, term->V + j0 * term->ldv, term->ldv, term->rank, nr);
      else
        pack_b_rows(dst, term->V + j0, term->ldv, term->rank, nr);
    }
  }
  const int64_t n_tasks = g.n_mb * g.n_nb;
  if (n_threads == 1 || n_tasks == 1) {
    for (int64_t i = 0; i < n_tasks; ++i) run_task(p, g, i);
    return;
  }
  ParallelErrors errors;  // an allocation failure in a worker's buffer must not escape the region
#pragma omp parallel for schedule(dynamic, 1) num_threads(int(std::min<int64_t>(n_threads, n_tasks)))
  for (int64_t i = 0; i < n_tasks; ++i) errors.run([&] { run_task(p, g, i); });
  errors.rethrow();
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  sgemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, nullptr);
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc, const LowRankTerm& term) {
  if (term.rank < 1 || term.rank > kKC)
    throw InvalidArgument("sgemm: a low-rank term's rank must be in 1..256, got " + std::to_string(term.rank));
  assert(term.ldu >= term.rank && term.ldv >= (term.trans_v ? term.rank : N));
  sgemm_impl(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, &term);
}

void sgemm_tile(bool trans_a, int mr, int nr, int64_t kc, float alpha, const float* A, int64_t lda, const float* B,
                int64_t ldb, bool accumulate, float* C, int64_t ldc) {
  assert(mr >= 1 && mr <= kMR && nr >= 1 && nr <= kNR && kc >= 1);
  static_assert(kSgemmTileRows == kMR && kSgemmTileCols == kNR);
  run_tile(Tile{.a = A, .lda = lda, .b = B, .ldb = ldb, .c = C, .ldc = ldc, .kc = kc, .nr = nr, .alpha = alpha,
                .beta = 0.0f, .first = !accumulate},
           mr, trans_a);
}

void sgemm_pack_trans_panel(float* dst, const float* src, int64_t lds, int64_t kc, int nr) {
  assert(nr >= 1 && nr <= kNR);
  pack_b_trans(dst, src, lds, kc, nr);
}

void transpose_floats(float* dst, int64_t ldd, const float* src, int64_t lds, int64_t rows, int64_t cols) {
  transpose_matrix(dst, ldd, src, lds, rows, cols);
}

void sgemm_fail_allocation_for_testing(int64_t after) { g_fail_countdown.store(after); }

}  // namespace ponder
