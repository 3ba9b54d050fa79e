#pragma once
// The GRPO objective's math, separate from the loop so it can be checked against hand-computed
// numbers (TRL's GRPOTrainer semantics):
//   advantage A_i = (r_i - mean(group)) / (std(group) + 1e-4), std with Bessel's correction;
//     scale_rewards "batch" divides by the std over the whole batch, "none" does not divide.
//   per token: ratio = exp(logp - old_logp); loss = -min(ratio A, clip(ratio, 1-eps, 1+eps_high) A)
//              + beta * KL, KL = exp(ref - logp) - (ref - logp) - 1 (the k3 estimator).
//   aggregation (loss_type): grpo = mean over sequences of each sequence's token mean;
//     bnpo = token mean over the micro-batch; dr_grpo = sum / (micro-batch size x max completion
//     length); dapo = token sum / tokens of the whole accumulated batch. Micro-batch losses are
//     averaged over the accumulation steps (summed for dapo, whose normaliser already spans them).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace ponder {

enum class LossType { Grpo, Bnpo, DrGrpo, Dapo };
enum class ScaleRewards { Group, Batch, None };
LossType parse_loss_type(const std::string& s);         // InvalidArgument
ScaleRewards parse_scale_rewards(const std::string& s);  // InvalidArgument

// rewards: (n_groups x group_size), group by group.
std::vector<float> group_advantages(std::span<const float> rewards, int group_size, ScaleRewards scale);

struct TokenLossOptions {
  float beta = 0.0f;          // KL weight
  float epsilon = 0.2f;       // clip low: ratio >= 1 - epsilon
  float epsilon_high = 0.2f;  // clip high: ratio <= 1 + epsilon_high
};

struct TokenLoss {
  double loss = 0;     // the per-token loss
  double dlogp = 0;    // d loss / d logp
  double kl = 0;       // the k3 KL at this token
  bool clipped = false;  // the clipped branch is the active one (no gradient through the ratio)
};
TokenLoss grpo_token_loss(double logp, double old_logp, double ref_logp, double advantage, const TokenLossOptions& o);

// One sequence of the batch as the loss sees it.
struct SequenceLoss {
  std::vector<float> logp, old_logp, ref_logp;  // (n completion tokens)
  float advantage = 0;
  bool masked = false;  // e.g. truncated with mask_truncated_completions: contributes nothing
};

struct LossStats {
  double loss = 0, kl = 0, clip_fraction = 0;
  int64_t tokens = 0;
};

// The loss of one micro-batch and d loss / d logp per token (same shapes as the logp vectors).
// max_completion_length: for dr_grpo; total_tokens: the accumulated batch's trained tokens (dapo);
// n_micro: micro-batches per step.
LossStats grpo_micro_batch_loss(std::span<const SequenceLoss> seqs, LossType type, const TokenLossOptions& o,
                                int max_completion_length, int64_t total_tokens, int n_micro,
                                std::vector<std::vector<float>>& dlogp);

}  // namespace ponder
