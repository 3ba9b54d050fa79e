// GRPO's math against hand-computed numbers (TRL semantics), and its gradient path through the
// model: zero advantage or fully masked batches leave the parameters unchanged.
#include <cmath>
#include <gtest/gtest.h>

#include "core/rng.h"
#include "train/adamw.h"
#include "train/forward_train.h"
#include "train/grpo_loss.h"

namespace ponder {
namespace {

TEST(GrpoAdvantages, HandComputedGroups) {
  // [1, 0, 0, 1]: mean 0.5, sample std sqrt(4 * 0.25 / 3) = 0.57735; A = +-0.5 / (0.57735 + 1e-4).
  const std::vector<float> r = {1, 0, 0, 1};
  const auto a = group_advantages(r, 4, ScaleRewards::Group);
  const double want = 0.5 / (std::sqrt(1.0 / 3.0) + 1e-4);
  EXPECT_NEAR(want, 0.8659, 5e-5);
  EXPECT_NEAR(a[0], want, 1e-6);
  EXPECT_NEAR(a[1], -want, 1e-6);
  EXPECT_NEAR(a[2], -want, 1e-6);
  EXPECT_NEAR(a[3], want, 1e-6);
  // An all-equal group has zero advantage, whatever the scaling.
  for (ScaleRewards s : {ScaleRewards::Group, ScaleRewards::Batch, ScaleRewards::None})
    for (float x : group_advantages(std::vector<float>{0.7f, 0.7f, 0.7f}, 3, s)) EXPECT_EQ(x, 0.0f);
  // "none" only centres; "batch" divides by the std of the whole batch: groups [1, 0] and [3, 3].
  const auto none = group_advantages(std::vector<float>{1, 0, 3, 3}, 2, ScaleRewards::None);
  EXPECT_FLOAT_EQ(none[0], 0.5f);
  EXPECT_FLOAT_EQ(none[2], 0.0f);
  const auto batch = group_advantages(std::vector<float>{1, 0, 3, 3}, 2, ScaleRewards::Batch);
  const double batch_std = std::sqrt(((1 - 1.75) * (1 - 1.75) + 1.75 * 1.75 + 2 * 1.25 * 1.25) / 3);
  EXPECT_NEAR(batch[0], 0.5 / (batch_std + 1e-4), 1e-6);
}

TEST(GrpoTokenLoss, ClippingAndKl) {
  const TokenLossOptions o{.beta = 0.0f, .epsilon = 0.2f, .epsilon_high = 0.28f};
  // ratio 1: loss -A, gradient -A.
  TokenLoss t = grpo_token_loss(-1.0, -1.0, -1.0, 2.0, o);
  EXPECT_DOUBLE_EQ(t.loss, -2.0);
  EXPECT_DOUBLE_EQ(t.dlogp, -2.0);
  EXPECT_FALSE(t.clipped);
  // ratio e^0.5 = 1.6487 > 1.28 with A > 0: the clipped term (1.28 A) is the min: no gradient.
  t = grpo_token_loss(-0.5, -1.0, -1.0, 1.0, o);
  EXPECT_NEAR(t.loss, -1.28, 1e-7);  // epsilon_high is a float
  EXPECT_EQ(t.dlogp, 0.0);
  EXPECT_TRUE(t.clipped);
  // The same ratio with A < 0: min(1.6487 A, 1.28 A) = 1.6487 A, unclipped: gradient -A * ratio.
  t = grpo_token_loss(-0.5, -1.0, -1.0, -1.0, o);
  EXPECT_NEAR(t.loss, std::exp(0.5), 1e-12);
  EXPECT_NEAR(t.dlogp, std::exp(0.5), 1e-12);
  EXPECT_FALSE(t.clipped);
  // ratio e^-0.5 = 0.6065 < 0.8 with A < 0: clipped (0.8 A is the min): no gradient.
  t = grpo_token_loss(-1.5, -1.0, -1.0, -1.0, o);
  EXPECT_NEAR(t.loss, 0.8, 1e-7);
  EXPECT_EQ(t.dlogp, 0.0);
  // k3 KL: 0 when the policy equals the reference; exp(d) - d - 1 otherwise, d = ref - logp.
  const TokenLossOptions kl{.beta = 0.1f};
  t = grpo_token_loss(-2.0, -2.0, -2.0, 0.0, kl);
  EXPECT_EQ(t.kl, 0.0);
  EXPECT_EQ(t.loss, 0.0);
  EXPECT_EQ(t.dlogp, 0.0);
  t = grpo_token_loss(-2.0, -2.0, -1.5, 0.0, kl);
  EXPECT_NEAR(t.kl, std::exp(0.5) - 0.5 - 1, 1e-12);
  EXPECT_NEAR(t.dlogp, double(0.1f) * (1 - std::exp(0.5)), 1e-9);
}

// Two sequences of 2 and 3 tokens, ratio 1, beta 0: each token's loss is -A.
TEST(GrpoLossTypes, NormalisersAsInTrl) {
  const float A1 = 0.8f, A2 = -0.3f;
  std::vector<SequenceLoss> seqs(2);
  seqs[0] = {.logp = {-1, -2}, .old_logp = {-1, -2}, .ref_logp = {}, .advantage = A1};
  seqs[1] = {.logp = {-1, -1, -3}, .old_logp = {-1, -1, -3}, .ref_logp = {}, .advantage = A2};
  const TokenLossOptions o{};
  std::vector<std::vector<float>> d;
  struct Case {
    LossType type;
    double loss, d1, d2;  // loss, d loss/d logp of a token of sequence 1 and of sequence 2
  };
  const double sum = -2 * A1 - 3 * A2;
  // The step: these 2 sequences, 5 tokens; max completion length 8.
  const LossNormaliser step{.n_sequences = 2, .n_tokens = 5, .max_completion_length = 8};
  for (const Case& c : {Case{LossType::Grpo, (-A1 - A2) / 2, -A1 / 2.0 / 2, -A2 / 3.0 / 2},
                        Case{LossType::Bnpo, sum / 5, -A1 / 5.0, -A2 / 5.0},
                        Case{LossType::DrGrpo, sum / (2 * 8), -A1 / 16.0, -A2 / 16.0},
                        Case{LossType::Dapo, sum / 5, -A1 / 5.0, -A2 / 5.0}}) {
    const LossStats s = grpo_micro_batch_loss(seqs, c.type, o, step, d);
    EXPECT_NEAR(s.loss, c.loss, 1e-7) << int(c.type);
    EXPECT_NEAR(d[0][1], c.d1, 1e-7) << int(c.type);
    EXPECT_NEAR(d[1][2], c.d2, 1e-7) << int(c.type);
    EXPECT_EQ(s.tokens, 5);
    // The same step cut into two micro-batches of one sequence each: the parts add up to the
    // whole, token by token.
    std::vector<std::vector<float>> d0, d1;
    const LossStats p0 = grpo_micro_batch_loss(std::span(seqs).first(1), c.type, o, step, d0);
    const LossStats p1 = grpo_micro_batch_loss(std::span(seqs).last(1), c.type, o, step, d1);
    EXPECT_NEAR(p0.loss + p1.loss, c.loss, 1e-7) << int(c.type);
    EXPECT_EQ(d0[0], d[0]) << int(c.type);
    EXPECT_EQ(d1[0], d[1]) << int(c.type);
  }
}

// A masked (truncated) sequence, as TRL: no loss, no gradient, no tokens; but it still counts as a
// sequence in grpo's mean over sequences and in dr_grpo's sequences x max length.
TEST(GrpoLossTypes, MaskedSequencesAsInTrl) {
  const float A1 = 0.8f, A2 = -0.3f;
  std::vector<SequenceLoss> seqs(3);
  seqs[0] = {.logp = {-1, -2}, .old_logp = {-1, -2}, .ref_logp = {}, .advantage = A1};
  seqs[1] = {.logp = {-1, -1, -3}, .old_logp = {-1, -1, -3}, .ref_logp = {}, .advantage = A2};
  seqs[2] = {.logp = {-1, -1, -1, -1}, .old_logp = {-2, -2, -2, -2}, .ref_logp = {}, .advantage = 5.0f, .masked = true};
  const LossNormaliser step{.n_sequences = 3, .n_tokens = 5, .max_completion_length = 8};
  const double sum = -2 * A1 - 3 * A2;
  std::vector<std::vector<float>> d;
  EXPECT_NEAR(grpo_micro_batch_loss(seqs, LossType::Grpo, {}, step, d).loss, (-A1 - A2) / 3, 1e-7);
  EXPECT_NEAR(d[0][0], -A1 / 2.0 / 3, 1e-7);
  EXPECT_EQ(d[2], std::vector<float>(4, 0.0f));
  EXPECT_NEAR(grpo_micro_batch_loss(seqs, LossType::DrGrpo, {}, step, d).loss, sum / (3 * 8), 1e-7);
  const LossStats s = grpo_micro_batch_loss(seqs, LossType::Dapo, {.beta = 0.1f}, step, d);
  EXPECT_NEAR(s.loss, sum / 5, 1e-7);
  EXPECT_EQ(s.tokens, 5) << "the masked sequence's tokens are not counted";
  EXPECT_EQ(s.kl(), 0.0) << "no reference given: the policy is the reference";
  EXPECT_EQ(d[2], std::vector<float>(4, 0.0f));
}

// Step-wide metrics: KL and clip fraction are means over every unmasked token of the step,
// whatever the parts: tokens (hand-computed) of ratio e^0.5 with A > 0 are clipped.
TEST(GrpoLossTypes, MetricsAreStepWide) {
  std::vector<SequenceLoss> seqs(2);
  seqs[0] = {.logp = {-0.5f}, .old_logp = {-1}, .ref_logp = {-1}, .advantage = 1};                  // clipped, kl k(-0.5)
  seqs[1] = {.logp = {-1, -1, -1}, .old_logp = {-1, -1, -1}, .ref_logp = {-1, -1, -1}, .advantage = 1};  // ratio 1, kl 0
  const LossNormaliser step{.n_sequences = 2, .n_tokens = 4, .max_completion_length = 8};
  std::vector<std::vector<float>> d;
  LossStats total = grpo_micro_batch_loss(std::span(seqs).first(1), LossType::Dapo, {.beta = 0.1f}, step, d);
  total += grpo_micro_batch_loss(std::span(seqs).last(1), LossType::Dapo, {.beta = 0.1f}, step, d);
  EXPECT_EQ(total.tokens, 4);
  EXPECT_DOUBLE_EQ(total.clip_fraction(), 0.25);
  EXPECT_NEAR(total.kl(), (std::exp(-0.5) + 0.5 - 1) / 4, 1e-7);
}

// A tiny model and a batch of two completions after a shared prompt.
struct TinyPolicy {
  TrainModel model{TrainConfig{.vocab = 13, .dim = 8, .n_layers = 1, .n_heads = 2, .n_kv_heads = 1, .ffn = 12, .ctx = 16}};
  TrainBatch batch{.B = 4, .T = 6};
  TinyPolicy() {
    init_params(model, 3);
    Rng rng(4);
    for (int i = 0; i < 24; ++i) {
      batch.tokens.push_back(int32_t(rng.below(13)));
      batch.targets.push_back(i % 6 >= 2 ? int32_t(rng.below(13)) : -1);  // 2 prompt positions, 4 completion tokens
    }
  }
  // The batch's sequences as the loss sees them, with the given advantages.
  std::vector<SequenceLoss> sequences(std::span<const float> adv, bool masked) {
    Activations a;
    std::vector<float> logp;
    forward_train(model, batch, a, logp);
    std::vector<SequenceLoss> out;
    for (int b = 0; b < 4; ++b) {
      std::vector<float> lp(logp.begin() + b * 6 + 2, logp.begin() + b * 6 + 6);
      out.push_back({.logp = lp, .old_logp = lp, .ref_logp = lp, .advantage = adv[size_t(b)], .masked = masked});
    }
    return out;
  }
  // One GRPO update through the model; returns the gradient norm.
  double update(const std::vector<SequenceLoss>& seqs, LossType type, double* loss = nullptr) {
    std::vector<std::vector<float>> d;
    const LossStats s = grpo_micro_batch_loss(seqs, type, {.beta = 0.0f}, {.n_sequences = 4, .n_tokens = 16, .max_completion_length = 4}, d);
    if (loss) *loss = s.loss;
    std::vector<float> dlogp(24, 0.0f);
    for (int b = 0; b < 4; ++b)
      for (int t = 0; t < 4; ++t) dlogp[size_t(b * 6 + 2 + t)] = d[size_t(b)][size_t(t)];
    Activations a;
    std::vector<float> logp, grads;
    forward_train(model, batch, a, logp);
    backward_train(model, batch, a, dlogp, grads);
    const double norm = clip_grad_norm(grads, 0);
    AdamWState st;
    adamw_step(model, grads, st, {.lr = 1e-2f, .weight_decay = 0.0f}, 1e-2f);
    return norm;
  }
};

TEST(GrpoUpdate, AllEqualGroupGivesZeroGradientAndNoChange) {
  TinyPolicy s;
  const auto before = s.model.params;
  const auto adv = group_advantages(std::vector<float>{1, 1, 1, 1}, 4, ScaleRewards::Group);
  EXPECT_EQ(s.update(s.sequences(adv, false), LossType::Dapo), 0.0);
  EXPECT_EQ(s.model.params, before);
}

TEST(GrpoUpdate, EveryCompletionMaskedMeansZeroLossAndNoChange) {
  TinyPolicy s;
  const auto before = s.model.params;
  const auto adv = group_advantages(std::vector<float>{1, 0, 0, 1}, 4, ScaleRewards::Group);
  double loss = 1;
  EXPECT_EQ(s.update(s.sequences(adv, true), LossType::Dapo, &loss), 0.0);
  EXPECT_EQ(loss, 0.0);
  EXPECT_EQ(s.model.params, before);
}

TEST(GrpoUpdate, OneIterationWithoutKlHasZeroLossButAGradient) {
  TinyPolicy s;
  const auto before = s.model.params;
  const auto adv = group_advantages(std::vector<float>{1, 0, 0, 1}, 4, ScaleRewards::Group);
  double loss = 1;
  const double norm = s.update(s.sequences(adv, false), LossType::Grpo, &loss);  // old = current: ratio 1
  EXPECT_NEAR(loss, 0.0, 1e-7);
  EXPECT_GT(norm, 1e-4);
  EXPECT_NE(s.model.params, before);
}

}  // namespace
}  // namespace ponder
