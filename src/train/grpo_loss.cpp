#include "train/grpo_loss.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace ponder {

LossType parse_loss_type(const std::string& s) {
  if (s == "grpo") return LossType::Grpo;
  if (s == "bnpo") return LossType::Bnpo;
  if (s == "dr_grpo") return LossType::DrGrpo;
  if (s == "dapo") return LossType::Dapo;
  throw InvalidArgument("--loss-type '" + s + "': expected grpo, bnpo, dr_grpo or dapo");
}

ScaleRewards parse_scale_rewards(const std::string& s) {
  if (s == "group" || s == "true") return ScaleRewards::Group;
  if (s == "batch") return ScaleRewards::Batch;
  if (s == "none" || s == "false") return ScaleRewards::None;
  throw InvalidArgument("--scale-rewards '" + s + "': expected group, batch or none");
}

namespace {
// Sample standard deviation (Bessel's correction), as torch.std.
double sample_std(std::span<const float> x, double mean) {
  if (x.size() < 2) return 0.0;
  double ss = 0;
  for (float v : x) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / double(x.size() - 1));
}
double mean_of(std::span<const float> x) {
  double s = 0;
  for (float v : x) s += v;
  return x.empty() ? 0.0 : s / double(x.size());
}
}  // namespace

std::vector<float> group_advantages(std::span<const float> rewards, int G, ScaleRewards scale) {
  if (G < 1 || rewards.size() % size_t(G) != 0)
    throw InvalidArgument("group_advantages: the rewards must hold whole groups of " + std::to_string(G));
  std::vector<float> adv(rewards.size());
  const double batch_std = sample_std(rewards, mean_of(rewards));
  for (size_t g0 = 0; g0 < rewards.size(); g0 += size_t(G)) {
    const auto group = rewards.subspan(g0, size_t(G));
    const double mean = mean_of(group);
    const double std = scale == ScaleRewards::Group ? sample_std(group, mean) : batch_std;
    for (size_t i = 0; i < size_t(G); ++i) {
      const double centered = double(group[i]) - mean;
      adv[g0 + i] = float(scale == ScaleRewards::None ? centered : centered / (std + 1e-4));
    }
  }
  return adv;
}

TokenLoss grpo_token_loss(double logp, double old_logp, double ref_logp, double A, const TokenLossOptions& o) {
  TokenLoss t;
  const double ratio = std::exp(logp - old_logp);
  const double clipped_ratio = std::clamp(ratio, 1.0 - o.epsilon, 1.0 + o.epsilon_high);
  const double unclipped = ratio * A, clipped = clipped_ratio * A;
  // -min(unclipped, clipped): the gradient flows through the ratio unless the clipped term is
  // the smaller one and the clamp is active.
  if (clipped < unclipped) {
    t.loss = -clipped;
    t.clipped = clipped_ratio != ratio;
    t.dlogp = t.clipped ? 0.0 : -A * ratio;
  } else {
    t.loss = -unclipped;
    t.dlogp = -A * ratio;
  }
  if (o.beta != 0) {
    const double d = ref_logp - logp;
    t.kl = std::exp(d) - d - 1.0;
    t.loss += o.beta * t.kl;
    t.dlogp += o.beta * (1.0 - std::exp(d));
  }
  return t;
}

LossStats& LossStats::operator+=(const LossStats& o) {
  loss += o.loss, kl_sum += o.kl_sum, clipped += o.clipped, tokens += o.tokens;
  return *this;
}

LossStats grpo_micro_batch_loss(std::span<const SequenceLoss> seqs, LossType type, const TokenLossOptions& o,
                                const LossNormaliser& norm, std::vector<std::vector<float>>& dlogp) {
  const double n_seqs = double(std::max<int64_t>(1, norm.n_sequences));
  const double n_tokens = double(std::max<int64_t>(1, norm.n_tokens));
  // The weight of one token of a sequence in the step's loss.
  auto weight = [&](const SequenceLoss& s) -> double {
    if (s.masked || s.logp.empty()) return 0.0;
    switch (type) {
      case LossType::Grpo: return 1.0 / double(s.logp.size()) / n_seqs;
      case LossType::Bnpo:
      case LossType::Dapo: return 1.0 / n_tokens;
      case LossType::DrGrpo: return 1.0 / (n_seqs * double(std::max(1, norm.max_completion_length)));
    }
    return 0.0;
  };
  LossStats st;
  dlogp.assign(seqs.size(), {});
  for (size_t i = 0; i < seqs.size(); ++i) {
    const SequenceLoss& s = seqs[i];
    const double w = weight(s);
    dlogp[i].assign(s.logp.size(), 0.0f);
    if (s.masked) continue;
    for (size_t t = 0; t < s.logp.size(); ++t) {
      const TokenLoss tl = grpo_token_loss(s.logp[t], s.old_logp[t], s.ref_logp.empty() ? s.logp[t] : s.ref_logp[t],
                                           s.advantage, o);
      dlogp[i][t] = float(w * tl.dlogp);
      st.loss += w * tl.loss;
      st.kl_sum += tl.kl;
      st.clipped += tl.clipped;
      ++st.tokens;
    }
  }
  return st;
}

}  // namespace ponder
