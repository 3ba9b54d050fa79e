#include "kernels/attention.h"

#include <algorithm>
#include <cmath>

#include "kernels/activation.h"
#include "kernels/dot.h"

#if defined(__AVX512VL__) && defined(__FMA__)
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

// out (D) = sum_p w[p] * v_p (D) in the order of llama.cpp's one-row dot product over the
// (padded) positions, which its attention uses for softmax(scores) . V: position p goes to lane
// p % 64 (one fma per element and position, positions in order within a lane), then each
// element's 64 lanes are reduced as reduce_lanes64 does. (llama.cpp pads the positions to a
// multiple of 256 with weight 0, so every position falls in a whole group of 64.)
// lanes: scratch (64, D).
void weighted_sum(float* out, const float* w, const KvBlocks& kv, int kv_dim, int offset, int D, float* lanes) {
  const int n_lanes = std::min(kv.n_ctx, 64);  // lanes past n_ctx - 1 stay +0 (llama.cpp's padding)
  std::fill(lanes, lanes + size_t(n_lanes) * size_t(D), 0.0f);
  for_each_position(kv.v, kv, kv_dim, offset, [&](int p, const float* v) {
    float* acc = lanes + size_t(p & 63) * size_t(D);
    int d = 0;
#if PONDER_ATTN_SIMD
    const __m256 wp = _mm256_set1_ps(w[p]);
    for (; d + 8 <= D; d += 8) _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(wp, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
#endif
    for (; d < D; ++d) acc[d] = std::fma(w[p], v[d], acc[d]);
  });
  // s[l] = (a[l] + a[l+32]) + (a[l+16] + a[l+48]), then the halving tree over l, element by
  // element; an unused lane adds +0, as llama.cpp's zero-weight padded positions do.
  auto lane = [&](int l) -> const float* { return l < n_lanes ? lanes + size_t(l) * D : nullptr; };
  auto add = [&](float* dst, const float* a, const float* b) {  // dst = a + b, a null lane is +0
    for (int d = 0; d < D; ++d) dst[d] = (a ? a[d] : 0.0f) + (b ? b[d] : 0.0f);
  };
  float* s = lanes;  // s[l] overwrites lane l (l < 16) after lanes l, l+16, l+32, l+48 are read
  const int n_s = std::min(n_lanes, 16);
  for (int l = 0; l < n_s; ++l) {
    float* sl = s + size_t(l) * D;
    if (n_lanes > 16) {
      float* tmp = out;  // (a[l+16] + a[l+48]) parked in out
      add(tmp, lane(l + 16), lane(l + 48));
      add(sl, lane(l), lane(l + 32));
      for (int d = 0; d < D; ++d) sl[d] = sl[d] + tmp[d];
    } else {
      for (int d = 0; d < D; ++d) sl[d] = (sl[d] + 0.0f) + (0.0f + 0.0f);
    }
  }
  int n_valid = n_s;  // s[l] for l >= n_valid is +0 (not stored)
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
  if (n_s == 0) std::fill(out, out + D, 0.0f);
  else std::copy(s, s + D, out);
}

}  // namespace

size_t attention_scratch_floats(int n_ctx, int D) { return size_t(n_ctx) + size_t(64) * size_t(D); }

void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            float* scratch) {
  const int kv_dim = Hkv * D, offset = kv_head * D;
  float* scores = scratch;
  for_each_position(kv.k, kv, kv_dim, offset, [&](int p, const float* k) { scores[p] = dot_f32(q, k, D) * scale; });
  softmax_forward(scores, kv.n_ctx);
  weighted_sum(out, scores, kv, kv_dim, offset, D, scratch + kv.n_ctx);
}

void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       float* scratch) {
  for (int h = 0; h < H; ++h) attention_head_forward(out + h * D, q + h * D, kv, h / (H / Hkv), Hkv, D, scale, scratch);
}

}  // namespace ponder
