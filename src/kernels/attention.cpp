#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/activation.h"
#include "kernels/dot.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PONDER_ATTN_SIMD 1
#else
#define PONDER_ATTN_SIMD 0
#endif

namespace ponder {

namespace {

// out (D) = sum_p w[p] * v_p (D) in one of llama.cpp's two orders for softmax(scores) . V:
// position p goes to lane p % n_lanes (one fma per element and position, positions in order
// within a lane), then each element's lanes are reduced in a fixed order:
//   n_lanes = 64, its one-row dot product (ggml_vec_dot_f32, one query token in the batch):
//     s[l] = (a[l] + a[l+32]) + (a[l+16] + a[l+48]) for l < 16, then s by halving (l + 8, 4, 2, 1);
//   n_lanes = 16, its batch kernel (tinyBLAS, 2+ query tokens): the 16 lanes by halving.
// llama.cpp pads the positions to a multiple of 256 with weight 0, so every position falls in a
// whole group of lanes and the lanes past the context hold +0; so they do here.
// lanes: scratch (64, D).
void weighted_sum(float* out, const float* w, const KvBlocks& kv, int kv_dim, int offset, int D, int n_lanes,
                  float* lanes) {
  const int n_used = std::min(kv.n_ctx, n_lanes);  // lanes with a position; the others are +0
  // Lane by lane, 64 elements at a time held in registers: lane l takes positions l, l + n_lanes,
  // ... in order, so each element sees the same fmas in the same order as position by position.
  constexpr int kChunk = 64;
  for (int l = 0; l < n_used; ++l)
    for (int d0 = 0; d0 < D; d0 += kChunk) {
      const int nd = std::min(kChunk, D - d0);
      float* acc = lanes + size_t(l) * size_t(D) + d0;
      auto each_position = [&](auto fn) {  // fn(weight, values) for the lane's positions in order
        int b = l / kv.block_size, i = l % kv.block_size;
        for (int p = l; p < kv.n_ctx; p += n_lanes) {
          fn(w[p], kv.v[b] + size_t(i) * size_t(kv_dim) + offset + d0);
          for (i += n_lanes; i >= kv.block_size; i -= kv.block_size) ++b;
        }
      };
#if PONDER_ATTN_SIMD
      if (nd == kChunk) {
        __m256 a[kChunk / 8];
        for (__m256& x : a) x = _mm256_setzero_ps();
        each_position([&](float wp, const float* v) {
          const __m256 w8 = _mm256_set1_ps(wp);
          for (int u = 0; u < kChunk / 8; ++u) a[u] = _mm256_fmadd_ps(w8, _mm256_loadu_ps(v + 8 * u), a[u]);
        });
        for (int u = 0; u < kChunk / 8; ++u) _mm256_storeu_ps(acc + 8 * u, a[u]);
        continue;
      }
#endif
      std::fill(acc, acc + nd, 0.0f);
      each_position([&](float wp, const float* v) {
        for (int d = 0; d < nd; ++d) acc[d] = std::fma(wp, v[d], acc[d]);
      });
    }
  auto lane = [&](int l) -> const float* { return l < n_used ? lanes + size_t(l) * D : nullptr; };
  auto add = [&](float* dst, const float* a, const float* b) {  // dst = a + b, a null lane is +0
    for (int d = 0; d < D; ++d) dst[d] = (a ? a[d] : 0.0f) + (b ? b[d] : 0.0f);
  };
  float* s = lanes;  // s[l] overwrites lane l (l < 16): the 16 values the halving tree reduces
  int n_valid = std::min(n_used, 16);  // s[l] for l >= n_valid is +0 (not stored)
  if (n_lanes == 64) {
    for (int l = 0; l < n_valid; ++l) {
      float* sl = s + size_t(l) * D;  // lanes l+16, l+32, l+48 are read before lane l is overwritten
      if (n_used > 16) {
        add(out, lane(l + 16), lane(l + 48));  // out parks (a[l+16] + a[l+48])
        add(sl, lane(l), lane(l + 32));
        for (int d = 0; d < D; ++d) sl[d] = sl[d] + out[d];
      } else {
        for (int d = 0; d < D; ++d) sl[d] = (sl[d] + 0.0f) + (0.0f + 0.0f);
      }
    }
  }
  for (int half = 8; half >= 1; half /= 2) {
    for (int l = 0; l < half && l < n_valid; ++l) {
      float* x = s + size_t(l) * D;
      if (l + half < n_valid) {
        const float* y = s + size_t(l + half) * D;
        for (int d = 0; d < D; ++d) x[d] = x[d] + y[d];
      } else {
        for (int d = 0; d < D; ++d) x[d] = x[d] + 0.0f;
      }
    }
    n_valid = std::min(n_valid, half);
  }
  if (n_valid == 0) std::fill(out, out + D, 0.0f);
  else std::copy(s, s + D, out);
}

#if defined(__AVX512F__)
// weighted_sum for the G heads of one KV head (the GQA heads of a KV head share its value rows),
// each row read from L2 once for all of them: D a multiple of 64, 64 elements at a time, with
// four lanes' chains of fmas side by side in registers (16 independent accumulators). The
// positions go in units of 16 (a unit's rows are consecutive in one block), a unit u holding
// positions 16u .. 16u + 15:
//   64 lanes: lane group l < 16 takes lanes l, l+16, l+32, l+48: row l of units 4k, 4k+1, 4k+2,
//     4k+3 in round k; the group's s[l] = (a[l] + a[l+32]) + (a[l+16] + a[l+48]) is formed in
//     registers;
//   16 lanes: lane group q < 4 takes lanes 4q .. 4q+3: rows 4q .. 4q+3 of unit k in round k.
// Rounds go in tiles of 8 (32 rows, 8 KB at D = 64, kept in L1 while the G heads take their
// turn), the accumulators parked in `park` between tiles. Then each head's 16 lane sums s[l] are
// reduced by the halving tree in registers. w: (G, n); out: (G, D); work: G * (16 + 4) * 64
// floats. Needs block_size a multiple of 16 or the whole context in one block.
void weighted_sum_group(float* out, const float* w, size_t n, int G, const KvBlocks& kv, int kv_dim, int offset, int D,
                        int n_lanes, float* work) {
  constexpr int kTile = 8;  // rounds per tile
  const int bs = kv.block_size, n_ctx = kv.n_ctx;
  const int units_per_round = n_lanes / 16, n_groups = n_lanes == 64 ? 16 : 4;
  float* s = work;                          // (G, 16, 64): each head's lane sums s[l]
  float* park = work + size_t(G) * 16 * 64;  // (G, 4, 64): accumulators between tiles
  for (int d0 = 0; d0 < D; d0 += 64) {
    for (int g = 0; g < n_groups; ++g) {
      // Lane j of the group in round k: position 16 * (k * units_per_round + unit[j]) + row[j].
      int unit[4], row[4];
      for (int j = 0; j < 4; ++j) {
        unit[j] = n_lanes == 64 ? j : 0;
        row[j] = n_lanes == 64 ? g : 4 * g + j;
      }
      int b = 0, i = 0;  // block and row of the next tile's first unit
      for (int k0 = 0; k0 == 0 || 16 * k0 * units_per_round < n_ctx; k0 += kTile) {
        // The tile's rows and positions, lane j of round k: rows[k][j], pos[k][j] (-1: past the context).
        const float* rows[kTile][4];
        int pos[kTile][4];
        const int n_rounds = std::max(0, std::min(kTile, (n_ctx + 16 * units_per_round - 1) / (16 * units_per_round) - k0));
        for (int k = 0; k < n_rounds; ++k) {
          const float* unit_row[4] = {};
          for (int u = 0; u < units_per_round; ++u) {
            if (16 * ((k0 + k) * units_per_round + u) < n_ctx) unit_row[u] = kv.v[b] + size_t(i) * size_t(kv_dim) + offset + d0;
            if ((i += 16) >= bs) i = 0, ++b;
          }
          for (int j = 0; j < 4; ++j) {
            const int p = 16 * ((k0 + k) * units_per_round + unit[j]) + row[j];
            pos[k][j] = p < n_ctx ? p : -1;
            rows[k][j] = p < n_ctx ? unit_row[unit[j]] + size_t(row[j]) * size_t(kv_dim) : nullptr;
          }
        }
        for (int h = 0; h < G; ++h) {
          const float* wh = w + size_t(h) * n;
          float* ph = park + size_t(h) * 4 * 64;
          __m512 a[4][4];
          for (int j = 0; j < 4; ++j)
            for (int c = 0; c < 4; ++c) a[j][c] = k0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(ph + 64 * j + 16 * c);
          for (int k = 0; k < n_rounds; ++k)
#pragma GCC unroll 4
            for (int j = 0; j < 4; ++j) {
              if (pos[k][j] < 0) continue;
              const __m512 wp = _mm512_set1_ps(wh[pos[k][j]]);
              const float* v = rows[k][j];
#pragma GCC unroll 4
              for (int c = 0; c < 4; ++c) a[j][c] = _mm512_fmadd_ps(wp, _mm512_loadu_ps(v + 16 * c), a[j][c]);
            }
          for (int j = 0; j < 4; ++j)
            for (int c = 0; c < 4; ++c) _mm512_storeu_ps(ph + 64 * j + 16 * c, a[j][c]);
        }
      }
      for (int h = 0; h < G; ++h) {
        const float* ph = park + size_t(h) * 4 * 64;
        float* sh = s + size_t(h) * 16 * 64;
        for (int c = 0; c < 64; c += 16) {
          auto lane = [&](int j) { return _mm512_loadu_ps(ph + 64 * j + c); };
          if (n_lanes == 64)
            _mm512_storeu_ps(sh + g * 64 + c, _mm512_add_ps(_mm512_add_ps(lane(0), lane(2)), _mm512_add_ps(lane(1), lane(3))));
          else
            for (int j = 0; j < 4; ++j) _mm512_storeu_ps(sh + (4 * g + j) * 64 + c, lane(j));
        }
      }
    }
    for (int h = 0; h < G; ++h)
      for (int c = 0; c < 64; c += 16) {
        const float* sh = s + size_t(h) * 16 * 64;
        __m512 t[16];
        for (int l = 0; l < 16; ++l) t[l] = _mm512_loadu_ps(sh + l * 64 + c);
        for (int half = 8; half >= 1; half /= 2)
          for (int l = 0; l < half; ++l) t[l] = _mm512_add_ps(t[l], t[l + half]);
        _mm512_storeu_ps(out + size_t(h) * size_t(D) + d0 + c, t[0]);
      }
  }
}
#endif

}  // namespace

size_t attention_scratch_floats(int n_ctx, int D, int heads) {
  return size_t(heads) * size_t(n_ctx) + std::max(size_t(64) * size_t(D), size_t(heads) * (16 + 4) * 64);
}

void attention_group_forward(float* out, const float* q, int G, const KvBlocks& kv, int kv_head, int Hkv, int D,
                             float scale, AttentionOrder order, float* scratch) {
  const int kv_dim = Hkv * D, offset = kv_head * D;
  const size_t n = size_t(kv.n_ctx);
  float* scores = scratch;  // (G, n_ctx)
  // The scores, 16 keys of a block at a time, each group of keys read once for the G heads.
  for (int p0 = 0, b = 0; p0 < kv.n_ctx; p0 += kv.block_size, ++b) {
    const float* keys = kv.k[b] + offset;
    const int m = std::min(kv.block_size, kv.n_ctx - p0);
    int i = 0;
    for (; i + 16 <= m; i += 16)
      for (int h = 0; h < G; ++h)
        dot_f32_rows16(q + size_t(h) * size_t(D), keys + size_t(i) * size_t(kv_dim), kv_dim, D, scores + size_t(h) * n + size_t(p0 + i));
    for (; i < m; ++i)
      for (int h = 0; h < G; ++h)
        scores[size_t(h) * n + size_t(p0 + i)] = dot_f32(q + size_t(h) * size_t(D), keys + size_t(i) * size_t(kv_dim), D);
  }
  for (int h = 0; h < G; ++h) {
    float* sh = scores + size_t(h) * n;
    for (size_t p = 0; p < n; ++p) sh[p] *= scale;
    softmax_forward(sh, int64_t(n));
  }
  // llama.cpp's batch kernel takes the product only when the head size is a multiple of 4.
  const int n_lanes = order == AttentionOrder::Batch && D % 4 == 0 ? 16 : 64;
  float* work = scratch + size_t(G) * n;
#if defined(__AVX512F__)
  if (D % 64 == 0 && (kv.block_size % 16 == 0 || kv.block_size >= kv.n_ctx)) {
    weighted_sum_group(out, scores, n, G, kv, kv_dim, offset, D, n_lanes, work);
    return;
  }
#endif
  for (int h = 0; h < G; ++h)
    weighted_sum(out + size_t(h) * size_t(D), scores + size_t(h) * n, kv, kv_dim, offset, D, n_lanes, work);
}

void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            AttentionOrder order, float* scratch) {
  attention_group_forward(out, q, 1, kv, kv_head, Hkv, D, scale, order, scratch);
}

void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       AttentionOrder order, float* scratch) {
  const int G = H / Hkv;
  for (int g = 0; g < Hkv; ++g)
    attention_group_forward(out + size_t(g) * size_t(G) * size_t(D), q + size_t(g) * size_t(G) * size_t(D), G, kv, g, Hkv, D,
                            scale, order, scratch);
}

}  // namespace ponder
