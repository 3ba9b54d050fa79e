#pragma once
// Causal grouped-query attention for one query token over a key/value history held in blocks
// (the paged KV cache; a contiguous cache is a single block). Head h reads KV head h / (H / Hkv).
#include <cstddef>
#include <cstdint>

namespace ponder {

struct KvBlocks {
  const float* const* k;  // k[b] -> (block_size, Hkv*D) keys of positions b*block_size ...
  const float* const* v;  // v[b] -> (block_size, Hkv*D)
  int block_size = 0;
  int n_ctx = 0;          // positions to attend to: 0 .. n_ctx-1
};

// The numerics are llama.cpp's (CPU, no flash attention) for one query row: scores q . k by
// dot_f32, softmax_forward, then the weighted sum of the values with each element's positions
// spread over 64 lanes and reduced in the fixed order of llama.cpp's dot product. They depend on
// nothing but this head's query and cache, so a row's result is the same in any batch.

// Floats of scratch one call needs: n_ctx scores plus 64 x D lane sums.
size_t attention_scratch_floats(int n_ctx, int D);

// One head: out (D) = softmax(scale * q . K^T) V over KV head kv_head.
// scratch: attention_scratch_floats(n_ctx, D) floats.
void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            float* scratch);

// All heads: out: (H, D); q: (H, D); scratch as above. scale is usually 1/sqrt(D).
void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       float* scratch);

}  // namespace ponder
