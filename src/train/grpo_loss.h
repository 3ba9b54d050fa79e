#pragma once
// The GRPO objective's math, separate from the loop so it can be checked against hand-computed
// numbers (TRL's GRPOTrainer semantics):
//   advantage A_i = (r_i - mean(group)) / (std(group) + 1e-4), std with Bessel's correction;
//     scale_rewards "batch" divides by the std over the whole batch, "none" does not divide.
//   per token: ratio = exp(logp - old_logp); loss = -min(ratio A, clip(ratio, 1-eps, 1+eps_high) A)
//              + beta * KL, KL = exp(ref - logp) - (ref - logp) - 1 (the k3 estimator).
//   aggregation (loss_type), over the WHOLE step (every micro-batch of it), so the update is the
//   gradient of the whole batch at once however the step is cut into micro-batches:
//     grpo    = mean over the step's sequences of each sequence's token mean;
//     bnpo    = token mean over the step;
//     dr_grpo = token sum / (sequences in the step x max completion length);
//     dapo    = token sum / tokens of the step.
//   (bnpo and dapo coincide here: in TRL they differ only in the micro-batch (bnpo) or the whole
//   accumulated batch (dapo) being the normaliser; here both are the step.)
//   Masked sequences (truncated, with mask_truncated_completions) are TRL's: the truncation mask
//   multiplies the completion mask, so a masked sequence has 0 tokens. It adds no loss and no
//   gradient and no tokens to the bnpo/dapo count, but it still counts as a sequence in the grpo
//   mean (its own mean is 0 / max(0, 1) = 0) and in dr_grpo's sequences x max length.
//   Metrics are step-wide too: KL and clip fraction are means over the step's unmasked tokens.
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

// What a token's weight is normalised by: counts over the whole step (every micro-batch).
struct LossNormaliser {
  int64_t n_sequences = 0;        // sequences in the step, masked ones included
  int64_t n_tokens = 0;           // completion tokens of the step's unmasked sequences
  int max_completion_length = 0;  // dr_grpo
};

// A micro-batch's share of the step's loss and metrics; add the shares of all micro-batches.
struct LossStats {
  double loss = 0;      // this part of the step's loss (the step's loss is the sum of the parts)
  double kl_sum = 0;    // k3 KL summed over unmasked tokens
  int64_t clipped = 0;  // unmasked tokens whose clipped branch is active
  int64_t tokens = 0;   // unmasked tokens
  double kl() const { return tokens > 0 ? kl_sum / double(tokens) : 0.0; }
  double clip_fraction() const { return tokens > 0 ? double(clipped) / double(tokens) : 0.0; }
  LossStats& operator+=(const LossStats& o);
};

// The loss of one micro-batch of the step and d loss / d logp per token (same shapes as the logp
// vectors), every token weighted by the step-wide counts in `norm` (see the top of this file).
LossStats grpo_micro_batch_loss(std::span<const SequenceLoss> seqs, LossType type, const TokenLossOptions& o,
                                const LossNormaliser& norm, std::vector<std::vector<float>>& dlogp);

}  // namespace ponder
