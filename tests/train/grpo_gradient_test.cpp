// The GRPO update's gradient does not depend on how the step is cut into micro-batches: for every
// loss type, micro-batches of 40, 32, 7 and 1 sequences give the gradient of the whole batch at
// once, with and without masked truncated completions, at the first iteration (ratio 1) and at a
// later one (ratio != 1, clipping active), with a KL term. The step's loss is checked against the
// TRL formulas computed here from each sequence's log-probs alone.
#include <cmath>
#include <gtest/gtest.h>

#include "core/rng.h"
#include "train/grpo_step.h"
#include "train/rollout_logp.h"

namespace ponder {
namespace {

constexpr int kMaxLen = 12;  // max completion length: completions of this length are truncated

TrainModel random_model(uint64_t seed) {
  TrainModel m(TrainConfig{.vocab = 17, .dim = 16, .n_layers = 2, .n_heads = 2, .n_kv_heads = 1, .ffn = 24, .ctx = 32});
  init_params(m, seed);
  return m;
}

// 5 groups of 8 rollouts: random prompts (3..6 tokens) and completions (1..12 tokens; the 12-token
// ones truncated), random rewards, group advantages.
std::vector<Rollout> random_batch(const GrpoOptions& o) {
  Rng rng(11);
  std::vector<Rollout> batch;
  for (int g = 0; g < 5; ++g) {
    std::vector<int32_t> prompt(3 + rng.below(4));
    for (int32_t& t : prompt) t = int32_t(rng.below(17));
    for (int i = 0; i < 8; ++i) {
      Rollout r{.prompt = prompt};
      r.completion.resize(1 + rng.below(kMaxLen));
      for (int32_t& t : r.completion) t = int32_t(rng.below(17));
      r.rollout_logp.assign(r.completion.size(), 0.0f);
      r.truncated = int(r.completion.size()) == kMaxLen;
      r.reward = float(rng.below(3)) * 0.5f;
      r.group = g;
      batch.push_back(std::move(r));
    }
  }
  set_advantages(batch, o);
  return batch;
}

double relative_difference(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]), den += double(b[i]) * b[i];
  return std::sqrt(num / den);
}


// TRL's loss at the first iteration (ratio 1: per token -A + beta * KL), from the sequences alone.
double trl_loss(const TrainModel& policy, const TrainModel& reference, const std::vector<Rollout>& batch,
                const GrpoOptions& o) {
  double sum_of_means = 0, token_sum = 0, tokens = 0;
  for (const Rollout& r : batch) {
    if (o.mask_truncated_completions && r.truncated) continue;  // 0 tokens: adds 0 to every sum
    const auto lp = ::ponder::testing::completion_logp_alone(policy, r, o.temperature), ref = ::ponder::testing::completion_logp_alone(reference, r, o.temperature);
    double seq = 0;
    for (size_t t = 0; t < lp.size(); ++t) {
      const double d = ref[t] - lp[t];
      seq += -double(r.advantage) + double(o.beta) * (std::exp(d) - d - 1);
    }
    sum_of_means += seq / double(lp.size()), token_sum += seq, tokens += double(lp.size());
  }
  const double n = double(batch.size());  // masked sequences count here
  switch (o.loss_type) {
    case LossType::Grpo: return sum_of_means / n;
    case LossType::Bnpo:
    case LossType::Dapo: return token_sum / tokens;
    case LossType::DrGrpo: return token_sum / (n * kMaxLen);
  }
  return 0;
}

TEST(GrpoGradient, SameForEveryMicroBatchSize) {
  const TrainModel reference = random_model(5);
  TrainModel policy = reference;
  Rng rng(6);
  for (float& p : policy.params) p += float(0.01 * rng.normal());  // the policy has moved from the reference
  TrainModel moved = policy;                                         // and moves again before iteration 1
  for (float& p : moved.params) p += float(0.05 * rng.normal());
  for (LossType type : {LossType::Grpo, LossType::Bnpo, LossType::DrGrpo, LossType::Dapo})
    for (bool mask : {false, true}) {
      GrpoOptions o;
      o.loss_type = type;
      o.mask_truncated_completions = mask;
      o.max_completion_length = kMaxLen;
      o.beta = 0.04f;
      o.epsilon = 0.05f;
      o.temperature = 0.9f;
      const std::string what = "loss type " + std::to_string(int(type)) + (mask ? ", masked" : "");
      // Micro-batch 40: the whole batch at once.
      std::vector<Rollout> whole = random_batch(o);
      ASSERT_GT(std::count_if(whole.begin(), whole.end(), [](const Rollout& r) { return r.truncated; }), 2);
      UpdateScratch s;
      o.micro_batch = 40;
      const LossStats first = policy_gradient(policy, &reference, whole, 0, o, s);
      const std::vector<float> g_first = s.grads;
      EXPECT_NEAR(first.loss, trl_loss(policy, reference, whole, o), 1e-5 * std::fabs(first.loss) + 1e-7) << what;
      EXPECT_GT(first.kl(), 0.0) << what;
      const LossStats later = policy_gradient(moved, &reference, whole, 1, o, s);  // old_logp from iteration 0
      const std::vector<float> g_later = s.grads;
      EXPECT_GT(later.clip_fraction(), 0.0) << what << ": the test should reach the clipped branch";
      for (int micro : {32, 7, 1}) {
        o.micro_batch = micro;
        std::vector<Rollout> batch = random_batch(o);
        const LossStats a = policy_gradient(policy, &reference, batch, 0, o, s);
        EXPECT_LE(relative_difference(s.grads, g_first), 1e-5) << what << ", micro-batch " << micro;
        EXPECT_NEAR(a.loss, first.loss, 1e-6 * std::fabs(first.loss) + 1e-9) << what << ", micro-batch " << micro;
        EXPECT_NEAR(a.kl(), first.kl(), 1e-6 * first.kl()) << what << ", micro-batch " << micro;
        EXPECT_EQ(a.tokens, first.tokens);
        const LossStats b = policy_gradient(moved, &reference, batch, 1, o, s);
        EXPECT_LE(relative_difference(s.grads, g_later), 1e-5) << what << ", micro-batch " << micro << ", iteration 1";
        EXPECT_NEAR(b.clip_fraction(), later.clip_fraction(), 1e-12) << what << ", micro-batch " << micro;
      }
    }
}

// With dapo, masked sequences are as if absent: the gradient equals that of the batch without them.
TEST(GrpoGradient, MaskedCompletionsContributeNothing) {
  const TrainModel policy = random_model(8);
  GrpoOptions o;
  o.max_completion_length = kMaxLen;
  o.loss_type = LossType::Dapo;
  o.micro_batch = 7;
  o.mask_truncated_completions = true;
  std::vector<Rollout> all = random_batch(o), kept;
  for (const Rollout& r : all)
    if (!r.truncated) kept.push_back(r);
  ASSERT_LT(kept.size(), all.size());
  UpdateScratch s;
  policy_gradient(policy, nullptr, all, 0, o, s);
  const std::vector<float> g_all = s.grads;
  o.mask_truncated_completions = false;
  policy_gradient(policy, nullptr, kept, 0, o, s);
  EXPECT_LE(relative_difference(g_all, s.grads), 1e-5);
}

}  // namespace
}  // namespace ponder
