#pragma once
// Causal grouped-query attention for one query token over a key/value history held in blocks
// (the paged KV cache; a contiguous cache is a single block). Head h reads KV head h / (H / Hkv).
#include <cstdint>

namespace ponder {

struct KvBlocks {
  const float* const* k;  // k[b] -> (block_size, Hkv*D) keys of positions b*block_size ...
  const float* const* v;  // v[b] -> (block_size, Hkv*D)
  int block_size = 0;
  int n_ctx = 0;          // positions to attend to: 0 .. n_ctx-1
};

// One head: out (D) = softmax(scale * q . K^T) V over KV head kv_head. scores: scratch (n_ctx).
void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            float* scores);

// All heads: out: (H, D); q: (H, D); scores: scratch of n_ctx floats. scale is usually 1/sqrt(D).
void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       float* scores);

}  // namespace ponder
