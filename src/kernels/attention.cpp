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

// Calls fn(p, row) for every position p < n_ctx with its row of keys or values, block by block.
template <typename Fn>
void for_each_position(const float* const* blocks, const KvBlocks& kv, int kv_dim, int offset, Fn fn) {
  for (int p0 = 0, b = 0; p0 < kv.n_ctx; p0 += kv.block_size, ++b) {
    const float* row = blocks[b] + offset;
    const int n = std::min(kv.block_size, kv.n_ctx - p0);
    for (int i = 0; i < n; ++i, row += kv_dim) fn(p0 + i, row);
  }
}

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

}  // namespace

size_t attention_scratch_floats(int n_ctx, int D) { return size_t(n_ctx) + size_t(64) * size_t(D); }

void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            AttentionOrder order, float* scratch) {
  const int kv_dim = Hkv * D, offset = kv_head * D;
  float* scores = scratch;
  for_each_position(kv.k, kv, kv_dim, offset, [&](int p, const float* k) { scores[p] = dot_f32(q, k, D) * scale; });
  softmax_forward(scores, kv.n_ctx);
  // llama.cpp's batch kernel takes the product only when the head size is a multiple of 4.
  const int n_lanes = order == AttentionOrder::Batch && D % 4 == 0 ? 16 : 64;
  weighted_sum(out, scores, kv, kv_dim, offset, D, n_lanes, scratch + kv.n_ctx);
}

void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       AttentionOrder order, float* scratch) {
  for (int h = 0; h < H; ++h)
    attention_head_forward(out + h * D, q + h * D, kv, h / (H / Hkv), Hkv, D, scale, order, scratch);
}

}  // namespace ponder
