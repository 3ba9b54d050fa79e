#include "kernels/attention.h"

#include "kernels/activation.h"
#include "kernels/dot.h"

namespace ponder {

void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            float* scores) {
  const int kv_dim = Hkv * D;
  for (int p = 0; p < kv.n_ctx; ++p) {
    const float* k = kv.k[p / kv.block_size] + (p % kv.block_size) * kv_dim + kv_head * D;
    scores[p] = dot_f32(q, k, D) * scale;
  }
  softmax_forward(scores, kv.n_ctx);
  for (int d = 0; d < D; ++d) out[d] = 0;
  for (int p = 0; p < kv.n_ctx; ++p) {
    const float* v = kv.v[p / kv.block_size] + (p % kv.block_size) * kv_dim + kv_head * D;
    const float w = scores[p];
    for (int d = 0; d < D; ++d) out[d] += w * v[d];
  }
}

void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       float* scores) {
  for (int h = 0; h < H; ++h) attention_head_forward(out + h * D, q + h * D, kv, h / (H / Hkv), Hkv, D, scale, scores);
}

}  // namespace ponder
