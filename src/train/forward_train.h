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

#include "train/lora.h"
#include "train/params.h"

namespace ponder {

struct TrainBatch {
  int B = 0, T = 0;
  std::vector<int32_t> tokens;   // (B, T) inputs
  std::vector<int32_t> targets;  // (B, T) the next token at each position, -1 where none (padding)
};

// Everything backward reads, sized for one (B, T). Grows, never shrinks.
// Causal attention runs in blocks of this many query rows; a block's products stop at its last key,
// so the stored probabilities (B, H, T, T) hold the lower triangle and zeros up to each block's end.
inline constexpr int kAttnRows = 64;

struct Activations {
  int B = 0, T = 0;
  std::vector<float> x_in, xn1, rstd1, q, k, v, probs, att, x_mid, xn2, rstd2, gate, up, h;  // per layer
  std::vector<float> x_final, xnf, rstdf;  // (N, C), (N, C), (N)
  std::vector<float> logits;               // (N, V): softmax of the logits after forward
  std::vector<float> rope_cos, rope_sin;   // (T, D/2)
  std::vector<float> lora_u;               // (L, kLoraTargets, N, r): x A^T of each adapter
  std::vector<float> frozen_w;             // a frozen base matrix (block_matrix) or head piece (head_rows) in f32
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
