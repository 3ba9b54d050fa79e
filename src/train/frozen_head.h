#pragma once
// The LM head of a model whose head gets no gradient (LoRA: the base is frozen), without the
// (N, V) logits. A position's log-prob of its target depends on the logits only through
// d logp / d logits = (onehot(target) - softmax) / temperature, so the gradient reaching the final
// norm is
//   dxnf[i] = dlogp[i] / temperature * (W[target[i]] - mean[i]),  mean[i] = sum_v softmax_v W[v],
// and mean is what the forward computes, in the same pass as the logits, as flash attention
// computes its output: the vocabulary is cut into kFrozenHeadSegments fixed ranges; a task (one
// range, up to kFrozenHeadRows positions) walks its range in pieces of kFrozenHeadPiece rows of W
// with an online softmax per position (running max and sum, its partial mean rescaled when a piece
// raises the max); the ranges are merged in order. Same products as the logits-then-dlogits head
// (N V C multiply-adds each way), but no (N, V) array written and read back, each piece of W read
// once while it is in L2, and no barrier between pieces (the tasks run single-threaded sgemm side
// by side). The cut does not depend on the thread count, so neither do the bits.
#include <cstdint>
#include <span>
#include <vector>

#include "train/params.h"

namespace ponder {

inline constexpr int64_t kFrozenHeadPiece = 256;  // rows of W per product: 256 x C floats stay in L2
inline constexpr int kFrozenHeadSegments = 4;     // vocabulary ranges, each its own online softmax
inline constexpr int64_t kFrozenHeadRows = 512;   // positions per task at most

struct FrozenHeadScratch {
  std::vector<float> mean;                 // (segments, N, C): each range's partial mean; [0] the result
  std::vector<float> max;                  // (segments, N): running max of the logits
  std::vector<double> sum;                 // (segments, N): running sum of exp(logit - max)
  std::vector<float> target;               // (N): the target's logit
  std::vector<std::vector<float>> logits;  // per thread (kFrozenHeadRows, kFrozenHeadPiece): a piece's logits
  std::vector<std::vector<float>> rows;    // per thread (kFrozenHeadPiece, C): a quantized head's piece as f32
  bool has_mean = false;                   // the last forward computed mean (for backward)
};

// The floats FrozenHeadScratch holds after a forward over N positions on `threads` threads (a
// double counting as two), for training_step_memory; dequantized: the head is not read in place.
double frozen_head_scratch_floats(int64_t N, int64_t C, int threads, bool dequantized);

// logp[i] = log softmax(xnf[i] W^T / temperature)[targets[i]] (0 where targets[i] < 0), and with
// with_mean s.mean (the first N x C floats) = the softmax-weighted mean of W's rows per position
// (without: log-probs only, half the products, as for a reference model's log-probs).
// xnf (N, C); head: the model's view of W (V, C), or null for a frozen base's (head_rows).
void frozen_head_forward(const TrainModel& m, const float* head, const float* xnf, std::span<const int32_t> targets,
                         int64_t N, float temperature, float* logp, FrozenHeadScratch& s, bool with_mean = true);

// dxnf (N, C) = dlogp[i] / temperature * (W[targets[i]] - mean[i]), 0 where targets[i] < 0; mean
// is the forward's s.mean (InvalidArgument when it ran without).
void frozen_head_backward(const TrainModel& m, const float* head, std::span<const int32_t> targets,
                          std::span<const float> dlogp, int64_t N, float temperature, const FrozenHeadScratch& s,
                          float* dxnf);

}  // namespace ponder
