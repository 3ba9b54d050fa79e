#include "model/forward.h"

#include <cmath>
#include <omp.h>

#include "core/error.h"
#include "core/grow.h"
#include "kernels/activation.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"

namespace ponder {

namespace {

// Runs fn(t) for t < T, split over threads when the batch is large enough to pay for it.
template <typename Fn>
void for_each_token(int64_t T, Fn fn) {
#pragma omp parallel for schedule(static) if (T >= 8)
  for (int64_t t = 0; t < T; ++t) fn(t);
}

// y (T, N) = x (T, K) W^T (+ s (x A^T) B^T with a runtime LoRA adapter) (+ bias)
// Each item's tokens form one chunk (kernels/quant.h: RowShape), so a row's arithmetic depends on
// its own sequence's chunk only; the adapter's sgemm depends on K only (kernels/gemm.h), and adds
// it as the trainer's forward does (train/forward_train.cpp).
void linear(float* y, const float* x, int64_t T, const WeightView& w, std::span<const float> bias, ForwardState& st,
            const LoraDelta& lora = {}) {
  pack_activations(st.packed, x, T, w.n_cols, w.type, st.chunks);
  matmul(y, w.n_rows, st.packed, w);
  if (lora.a) {
    float* u = sized(st.lora_u, size_t(T) * size_t(lora.rank));
    sgemm(false, true, T, lora.rank, w.n_cols, 1.0f, x, w.n_cols, lora.a, w.n_cols, 0.0f, u, lora.rank);
    sgemm(false, true, T, w.n_rows, lora.rank, lora.scale, u, lora.rank, lora.b, lora.rank, 1.0f, y, w.n_rows);
  }
  if (!bias.empty())
    for_each_token(T, [&](int64_t t) {
      for (int64_t n = 0; n < w.n_rows; ++n) y[t * w.n_rows + n] += bias[size_t(n)];
    });
}

}  // namespace

void forward(const Model& model, KvPool& pool, std::span<const BatchItem> batch, ForwardState& st,
             std::vector<float>& logits) {
  const ModelConfig& c = model.config;
  const ModelWeights& w = model.weights;
  const int C = c.n_embd, H = c.n_head, Hkv = c.n_head_kv, D = c.head_dim, F = c.n_ff;
  const int qd = c.q_dim(), kvd = c.kv_dim(), half_rot = c.n_rot / 2;

  // Room in the cache for every item first, so a failure leaves every sequence unchanged.
  int64_t T = 0, n_out = 0;
  for (const BatchItem& it : batch) {
    T += int64_t(it.tokens.size());
    n_out += it.logits == LogitsFor::All ? int64_t(it.tokens.size()) : it.logits == LogitsFor::Last ? 1 : 0;
    for (int32_t tok : it.tokens)
      if (tok < 0 || tok >= c.n_vocab)
        throw InvalidArgument("token id " + std::to_string(tok) + " is outside the vocabulary [0, " +
                              std::to_string(c.n_vocab) + ")");
  }
  int need = 0;  // an upper bound: sequences sharing a block may need fewer copies
  for (const BatchItem& it : batch) need += pool.blocks_needed(*it.seq, int(it.tokens.size()));
  if (need > pool.n_free())
    throw ResourceError("KV cache is full: this step needs up to " + std::to_string(need) + " blocks of " +
                        std::to_string(pool.block_size()) + " positions, " + std::to_string(pool.n_free()) +
                        " of " + std::to_string(pool.n_blocks()) + " are free (raise the context size or use fewer paths)");
  for (const BatchItem& it : batch) pool.reserve(*it.seq, int(it.tokens.size()));
  if (T == 0) {
    logits.clear();
    return;
  }

  float* x = sized(st.x, size_t(T * C));
  float* xb = sized(st.xb, size_t(T * std::max(C, qd)));
  float* q = sized(st.q, size_t(T * qd));
  float* k = sized(st.k, size_t(T * kvd));
  float* v = sized(st.v, size_t(T * kvd));
  float* att = sized(st.att, size_t(T * qd));
  float* gate = sized(st.ffn_gate, size_t(T * F));
  float* up = sized(st.ffn_up, size_t(T * F));
  int32_t* pos = sized(st.pos, size_t(T));
  int32_t* item_of = sized(st.item_of, size_t(T));
  float* rc = sized(st.rope_cos, size_t(T * std::max(half_rot, 1)));
  float* rs = sized(st.rope_sin, size_t(T * std::max(half_rot, 1)));

  st.chunks.clear();
  for (const BatchItem& it : batch) st.chunks.push_back(int32_t(it.tokens.size()));

  // Embeddings, positions, rotary angles.
  int64_t t = 0;
  int max_ctx = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    const BatchItem& it = batch[i];
    for (size_t j = 0; j < it.tokens.size(); ++j, ++t) {
      pos[t] = it.seq->n_pos + int32_t(j);
      item_of[t] = int32_t(i);
      dequantize_row(x + t * C, w.token_embd, it.tokens[j]);
      rope_angles(rc + t * half_rot, rs + t * half_rot, pos[t], c.n_rot, c.rope_freq_base);
    }
    max_ctx = std::max(max_ctx, it.seq->n_pos + int(it.tokens.size()));
  }
  const int n_threads = omp_get_max_threads();
  // Attention runs one task per token and KV head: its G = H / Hkv query heads read the keys and
  // values once. With fewer tasks than threads (one token, few KV heads, many cores) a KV head's
  // heads are split into `split` tasks (each head's bits do not depend on the grouping).
  const int G = H / Hkv;
  int split = 1;
  while (T * Hkv * split < n_threads && split < G) ++split;
  const size_t scratch_per_thread = attention_scratch_floats(max_ctx, D, G);
  float* scores = sized(st.scores, size_t(n_threads) * scratch_per_thread);
  size_t n_block_ptrs = 0;
  st.block_start.resize(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    st.block_start[i] = n_block_ptrs;
    n_block_ptrs += batch[i].seq->blocks.size();
  }
  const float** kb = sized(st.k_blocks, n_block_ptrs);
  const float** vb = sized(st.v_blocks, n_block_ptrs);
  const float scale = 1.0f / std::sqrt(float(D));
  const int bs = pool.block_size();

  for (int l = 0; l < c.n_layer; ++l) {
    const LayerWeights& lw = w.layers[size_t(l)];
    for_each_token(T, [&](int64_t t) { rmsnorm_forward(xb + t * C, x + t * C, lw.attn_norm.data(), 1, C, c.rms_eps); });
    linear(q, xb, T, lw.attn_q, lw.bq, st, lw.lora[0]);
    linear(k, xb, T, lw.attn_k, lw.bk, st, lw.lora[1]);
    linear(v, xb, T, lw.attn_v, lw.bv, st, lw.lora[2]);
    for_each_token(T, [&](int64_t t) {
      rope_forward(q + t * qd, H, D, c.n_rot, rc + t * half_rot, rs + t * half_rot, c.arch->rope_style);
      rope_forward(k + t * kvd, Hkv, D, c.n_rot, rc + t * half_rot, rs + t * half_rot, c.arch->rope_style);
      const KvSeq& s = *batch[size_t(item_of[t])].seq;
      const int32_t blk = s.blocks[size_t(pos[t] / bs)];
      const int off = pos[t] % bs;
      std::copy(k + t * kvd, k + (t + 1) * kvd, pool.k(blk, l) + size_t(off) * size_t(kvd));
      std::copy(v + t * kvd, v + (t + 1) * kvd, pool.v(blk, l) + size_t(off) * size_t(kvd));
    });
    for (size_t i = 0; i < batch.size(); ++i) {
      const KvSeq& s = *batch[i].seq;
      for (size_t b = 0; b < s.blocks.size(); ++b) {
        kb[st.block_start[i] + b] = pool.k(s.blocks[b], l);
        vb[st.block_start[i] + b] = pool.v(s.blocks[b], l);
      }
    }
    // Threads pay off once there is enough attention work (positions x heads x head dim).
    int64_t attn_work = 0;
    for (int64_t tt = 0; tt < T; ++tt) attn_work += int64_t(pos[tt] + 1) * H * D;
#pragma omp parallel for collapse(3) schedule(static) if (attn_work >= (1 << 16))
    for (int64_t tt = 0; tt < T; ++tt)
      for (int g = 0; g < Hkv; ++g)
        for (int part = 0; part < split; ++part) {
          const size_t i = size_t(item_of[tt]);
          const KvBlocks kv{.k = kb + st.block_start[i], .v = vb + st.block_start[i], .block_size = bs,
                            .n_ctx = pos[tt] + 1};
          float* sc = scores + size_t(omp_get_thread_num()) * scratch_per_thread;
          const AttentionOrder order = batch[i].tokens.size() >= 2 ? AttentionOrder::Batch : AttentionOrder::OneToken;
          const int h0 = g * G + part * G / split, h1 = g * G + (part + 1) * G / split;
          attention_group_forward(att + tt * qd + h0 * D, q + tt * qd + h0 * D, h1 - h0, kv, g, Hkv, D, scale, order, sc);
        }
    linear(xb, att, T, lw.attn_output, lw.bo, st, lw.lora[3]);
    for_each_token(T, [&](int64_t t) {
      for (int64_t i = t * C; i < (t + 1) * C; ++i) x[i] += xb[i];
      rmsnorm_forward(xb + t * C, x + t * C, lw.ffn_norm.data(), 1, C, c.rms_eps);
    });
    linear(gate, xb, T, lw.ffn_gate, {}, st, lw.lora[4]);
    linear(up, xb, T, lw.ffn_up, {}, st, lw.lora[5]);
    for_each_token(T, [&](int64_t t) { swiglu_forward(gate + t * F, gate + t * F, up + t * F, F); });
    linear(xb, gate, T, lw.ffn_down, {}, st, lw.lora[6]);
    for_each_token(T, [&](int64_t t) {
      for (int64_t i = t * C; i < (t + 1) * C; ++i) x[i] += xb[i];
    });
  }

  for (const BatchItem& it : batch) it.seq->n_pos += int(it.tokens.size());

  // Final norm and LM head only for the rows that want logits.
  float* rows = sized(st.out_rows, size_t(std::max<int64_t>(n_out, 1) * C));
  int64_t r = 0;
  t = 0;
  st.out_chunks.clear();
  for (const BatchItem& it : batch) {
    const int64_t n = int64_t(it.tokens.size());
    if (it.logits == LogitsFor::All) {
      for (int64_t j = 0; j < n; ++j) std::copy(x + (t + j) * C, x + (t + j + 1) * C, rows + (r++) * C);
      st.out_chunks.push_back(int32_t(n));
    } else if (it.logits == LogitsFor::Last && n > 0) {
      std::copy(x + (t + n - 1) * C, x + (t + n) * C, rows + (r++) * C);
      st.out_chunks.push_back(1);
    }
    t += n;
  }
  logits.resize(size_t(n_out) * size_t(c.n_vocab));
  if (n_out == 0) return;
  rmsnorm_forward(rows, rows, w.output_norm.data(), n_out, C, c.rms_eps);
  pack_activations(st.packed, rows, n_out, C, w.output.type, st.out_chunks);
  matmul(logits.data(), c.n_vocab, st.packed, w.output);
}

}  // namespace ponder
