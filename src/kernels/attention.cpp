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

#if PONDER_ATTN_SIMD
// out (8*NV) = sum_p w[p] * v_p with the accumulators in registers.
template <int NV>
void weighted_sum_simd(float* out, const float* w, const KvBlocks& kv, int kv_dim, int offset) {
  __m256 acc[NV];
  for (int j = 0; j < NV; ++j) acc[j] = _mm256_setzero_ps();
  for_each_position(kv.v, kv, kv_dim, offset, [&](int p, const float* v) {
    const __m256 wp = _mm256_set1_ps(w[p]);
    for (int j = 0; j < NV; ++j) acc[j] = _mm256_fmadd_ps(wp, _mm256_loadu_ps(v + 8 * j), acc[j]);
  });
  for (int j = 0; j < NV; ++j) _mm256_storeu_ps(out + 8 * j, acc[j]);
}
#endif

// out (D) = sum_p w[p] * v_p (D), in position order, one fma per element and position.
void weighted_sum(float* out, const float* w, const KvBlocks& kv, int kv_dim, int offset, int D) {
#if PONDER_ATTN_SIMD
  switch (D) {
    case 16: return weighted_sum_simd<2>(out, w, kv, kv_dim, offset);
    case 32: return weighted_sum_simd<4>(out, w, kv, kv_dim, offset);
    case 64: return weighted_sum_simd<8>(out, w, kv, kv_dim, offset);
    case 128: return weighted_sum_simd<16>(out, w, kv, kv_dim, offset);
    default: break;
  }
#endif
  for (int d = 0; d < D; ++d) out[d] = 0;
  for_each_position(kv.v, kv, kv_dim, offset, [&](int p, const float* v) {
    for (int d = 0; d < D; ++d) out[d] = std::fma(w[p], v[d], out[d]);
  });
}

}  // namespace

void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            float* scores) {
  const int kv_dim = Hkv * D, offset = kv_head * D;
  for_each_position(kv.k, kv, kv_dim, offset, [&](int p, const float* k) { scores[p] = dot_f32(q, k, D) * scale; });
  softmax_forward(scores, kv.n_ctx);
  weighted_sum(out, scores, kv, kv_dim, offset, D);
}

void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       float* scores) {
  for (int h = 0; h < H; ++h) attention_head_forward(out + h * D, q + h * D, kv, h / (H / Hkv), Hkv, D, scale, scores);
}

}  // namespace ponder
