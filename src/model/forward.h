#pragma once
// One forward step over a batch of sequences: each item appends its new tokens (a prompt chunk
// or one decode token) to its KV sequence; all items' tokens go through every matrix product
// together, so each weight is read once per step. Logits come back for the items that ask.
#include <cstdint>
#include <span>
#include <vector>

#include "kernels/matmul.h"
#include "model/kv_pool.h"
#include "model/model.h"

namespace ponder {

enum class LogitsFor { None, Last, All };

struct BatchItem {
  KvSeq* seq = nullptr;
  std::span<const int32_t> tokens;  // appended at positions seq->n_pos ...
  LogitsFor logits = LogitsFor::Last;
};

// Scratch buffers for forward(); they grow to the largest batch seen and are reused.
struct ForwardState {
  std::vector<float> x, xb, q, k, v, att, ffn_gate, ffn_up;  // (T, ...)
  std::vector<float> out_rows;                               // (n_out, C)
  std::vector<int32_t> pos;                                  // (T) position of each token
  std::vector<int32_t> item_of;                              // (T) batch item of each token
  std::vector<float> rope_cos, rope_sin;                     // (T, n_rot/2)
  std::vector<const float*> k_blocks, v_blocks;              // block pointers per item, one layer
  std::vector<size_t> block_start;                           // (n_items) offset into k_blocks
  std::vector<float> scores;                                 // (n_threads, max ctx)
  PackedActivations packed;
  std::vector<float> lora_u;                                 // (T, rank): x A^T of a runtime LoRA adapter
  std::vector<int32_t> chunks, out_chunks;  // token counts of the batch's items (rows, logit rows)
};

// Runs the step. logits: (n_out, V) rows in item order (one row for Last, one per token for All).
// Throws ResourceError when the KV pool has no room, InvalidArgument for a token id out of range.
void forward(const Model& model, KvPool& pool, std::span<const BatchItem> batch, ForwardState& st,
             std::vector<float>& logits);

}  // namespace ponder
