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

// The numerics are llama.cpp's (CPU, no flash attention): scores q . k by dot_f32 (its one-row
// dot product), softmax_forward, then the weighted sum of the values with each element's
// positions spread over lanes and reduced in a fixed order. llama.cpp sums softmax . V in one of
// two orders: 64 lanes when its batch holds one query token, 16 lanes (its batch kernel) when it
// holds several. ponder makes the choice per sequence (AttentionOrder), never from what else is
// in the batch: a sequence's one-token steps (decoding, one path or many) use the one-token order,
// and a chunk of 2+ of its tokens (a prompt) the batch order, as llama.cpp computes a prompt.
enum class AttentionOrder { OneToken, Batch };

// Floats of scratch one call over `heads` query heads needs (their scores and lane sums).
size_t attention_scratch_floats(int n_ctx, int D, int heads = 1);

// The G query heads h0 .. h0 + G - 1 that read KV head kv_head (grouped-query attention: G = H /
// Hkv): out (G, D), q (G, D), each the bits attention_head_forward gives for its head alone; the
// keys and values are read once for the G heads. scratch: attention_scratch_floats(n_ctx, D, G).
void attention_group_forward(float* out, const float* q, int G, const KvBlocks& kv, int kv_head, int Hkv, int D,
                             float scale, AttentionOrder order, float* scratch);

// One head: out (D) = softmax(scale * q . K^T) V over KV head kv_head.
// scratch: attention_scratch_floats(n_ctx, D) floats.
void attention_head_forward(float* out, const float* q, const KvBlocks& kv, int kv_head, int Hkv, int D, float scale,
                            AttentionOrder order, float* scratch);

// All heads: out: (H, D); q: (H, D); scratch: attention_scratch_floats(n_ctx, D, H / Hkv). scale is usually 1/sqrt(D).
void attention_forward(float* out, const float* q, const KvBlocks& kv, int H, int Hkv, int D, float scale,
                       AttentionOrder order, float* scratch);

}  // namespace ponder
