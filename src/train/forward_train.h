#pragma once
// The training forward and backward passes of the Llama model over a batch of B sequences of T
// tokens (right-padded). forward_train records what backward needs; backward_train is the forward
// read bottom-up, with the same names prefixed by d.
//
// The pass computes, per position, logp = log p(target | tokens before it); the caller's loss is
// any function of those log-probs: backward_train takes dlogp = dLoss/dlogp per position (for
// cross-entropy -1/count on the trained positions, 0 elsewhere; GRPO passes its own).
#include <cstdint>
#include <span>
#include <vector>

#include "train/frozen_head.h"
#include "train/lora.h"
#include "train/params.h"

namespace ponder {

struct TrainBatch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens;   // (B, T) inputs
  std::vector<int32_t> targets;  // (B, T) the next token at each position, -1 where none (padding)
};

// The backward's causal attention runs in blocks of this many query rows (the forward in tiles of
// kSgemmTileRows); kept probabilities are zero from t + 1 to the end of their block.
inline constexpr int kAttnRows = 64;

// The attention probabilities of query rows r0..r1 of one (sequence, head) against keys 0..r1-1:
// P (r1 - r0, ld) = softmax over t' <= t of (Q K^T * scale), zeros from t + 1 to r1. q and k point
// at the head's row 0 (row strides qd and kvd, head_dim D).
void attention_probs_block(float* P, int64_t ld, const float* q, int64_t qd, const float* k, int64_t kvd, int D,
                           int r0, int r1, float scale);

// The attention's small products on sgemm's register tile (kernels/gemm.h), each element sgemm's
// chain over K blocks of 256, so the bits of one sgemm call:
//  * HeadPanels holds a head's K or V (T, D; row stride ld) as packed B^T panels, and
//    times_transposed gives C (mr, n) = alpha * A (mr, D; row stride lda) X[0:n]^T for n <= T;
//  * rows_times gives C (mr, D) = alpha * A (mr, n) Y (n, D), Y's rows read in place.
class HeadPanels {
 public:
  void pack(const float* x, int64_t ld, int T, int D);
  void times_transposed(int mr, int n, float alpha, const float* A, int64_t lda, float* C, int64_t ldc) const;

 private:
  const float* panel(int p, int j) const;
  std::vector<float> panels_;  // (ceil(D / 256), ceil(T / 32)) panels of (256, 32)
  int D_ = 0, n_col_panels_ = 0;
};
void rows_times(int mr, int n, int D, float alpha, const float* A, int64_t lda, const float* Y, int64_t ldy, float* C,
                int64_t ldc);

// One head's rows as a contiguous (T, D) copy, and back: dst (T, D) <- src (T, D; row stride ld)
// and dst (T, D; row stride ld) <- src (T, D). The attention's tiles read and write a head's rows
// from these copies: in place, its D floats of rows 0.5-1 KB apart (q_dim or kv_dim floats) fall
// into a few L1 sets and evict each other. On the 5m preset (one layer in a harness) backward ran
// 7.9 -> 5.7 ms and forward 3.7-4.4 -> 3.5-3.6 ms; in the step (timers, alternating binaries) the
// attention went from 88-100 to 64-77 ms. The same bits: the copies hold the same values.
void copy_head_rows(float* dst, const float* src, int64_t ld, int T, int D);
void store_head_rows(float* dst, int64_t ld, const float* src, int T, int D);

// Whether forward_train keeps the attention probabilities (B, H, T, T per layer) for backward:
// when they take at most 256 MB. Larger (long sequences) backward recomputes each block with
// attention_probs_block instead, the same bits, so memory grows linearly in T. Keeping them is
// faster where they fit: on the 5m preset's step recomputing cost 6-12 ms of backward and saved
// 3-4 ms of forward.
bool keep_attention_probs(int64_t B, int H, int64_t T, int L);
// Tests: the most bytes of kept probabilities (negative: the default), to run both paths.
void set_attention_probs_limit_for_testing(double bytes);

// The logits of a head with a gradient (full fine-tuning) over a vocabulary of at least 8 pieces
// are computed in pieces of this many words, single-threaded products side by side: each piece of
// W read from memory once, into the cache of the core that uses it (1.07-1.39x over one
// 512 x 151936 x 896 product). Backward's products stay whole: cut the same way they ran 0.88-1.02x.
inline constexpr int64_t kHeadPiece = 256;

// The FFN's gate and up projections of a batch with fewer tokens N than FFN features F (the
// Qwen2-0.5B shape's 512 tokens against F = 4864) run transposed, gate^T = W_gate x^T: the weight
// (F, C), the larger operand, is then read in place and the activations (N, C) packed, instead of
// the weight packed for only N rows. Same products and sums per element, so the same bits; the
// 0.5B forward gate/up products ran 1.17-1.24x (the 5m preset's, 4096 tokens against F = 768,
// 0.83x: they keep the token-major layout). The two land in one layer's scratch (F, N) each and
// go back to Activations::gate and up, token-major as backward reads them, in tiles of 128 tokens
// by 32 features that SwiGLU then reads from cache (its 16-lane groups start at the same features
// as on a whole row, so the same bits). The 0.5B LoRA step's forward: 2-7% faster in six pairs
// alternating with the token-major build (backward unchanged).
bool ffn_feature_major(int64_t N, int F);
inline constexpr int kFfnRows = 128, kFfnCols = 32;  // a transposed tile: tokens x features
// Tests: 0 or 1 forces the direct or the transposed gate and up products, -1 restores the default.
void set_ffn_feature_major_for_testing(int mode);

// Everything backward reads, sized for one (B, T). Grows, never shrinks.
struct Activations {
  int B = 0, T = 0;
  std::vector<float> x_in, xn1, rstd1, q, k, v, att, x_mid, xn2, rstd2, gate, up, h;  // per layer
  bool ffn_t = false;                      // gate and up were computed transposed: ffn_feature_major
  std::vector<float> ffn_fm;               // with ffn_t: one layer's gate^T and up^T (2, F, N)
  std::vector<float> probs;                // (L, B, H, T, T) when keep_attention_probs, else empty
  bool probs_kept = false;
  std::vector<float> x_final, xnf, rstdf;  // (N, C), (N, C), (N)
  std::vector<float> logits;               // (N, V): softmax of the logits after forward (not head_frozen)
  bool head_frozen = false;                // LoRA: train/frozen_head.h's head, no logits
  FrozenHeadScratch head;                  // with head_frozen: the softmax-weighted mean of W's rows per position
  std::vector<float> rope_cos, rope_sin;   // (T, D/2)
  std::vector<float> lora_u;               // (L, kLoraTargets, N, r): x A^T of each adapter
  std::vector<float> frozen_w;             // a frozen base matrix in f32 (block_matrix)
  float temperature = 1.0f;                // the logits were divided by it
  // backward scratch
  std::vector<float> dx, dxn, dbig, dbig2, datt, dq, dk, dv, lora_du;
};

// Returns the mean of -logp over positions with a target (the cross-entropy) for reporting.
// temperature: log-probs of softmax(logits / temperature), as TRL's GRPO computes them for
// rollouts sampled at that temperature (1 for SFT).
// lora: adapters on the model's matrices (train/lora.h), added to their outputs.
double forward_train(const TrainModel& m, const TrainBatch& batch, Activations& acts, std::vector<float>& logp,
                     float temperature = 1.0f, const LoraAdapters* lora = nullptr);

// grads (same layout as the params) += d(sum_t dlogp[t] * logp[t]) / dparams.
// With lora (the adapters forward_train ran with): the base model is frozen, grads has the
// adapters' layout and receives their gradients only.
void backward_train(const TrainModel& m, const TrainBatch& batch, Activations& acts, std::span<const float> dlogp,
                    std::vector<float>& grads, const LoraAdapters* lora = nullptr);

}  // namespace ponder
