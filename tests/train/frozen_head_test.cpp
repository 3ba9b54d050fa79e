// The LoRA head without logits (train/frozen_head.h) against the definition computed in double:
// logp = logit[target] - log sum exp(logits), mean = sum_v softmax_v W[v], and the gradient
// dlogp / temperature * (W[target] - mean), on vocabularies that span several pieces and ranges
// (including empty ranges) and on more positions than one task takes.
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "train/frozen_head.h"

namespace ponder {
namespace {

struct Case {
  int64_t V, C, N;
  float temperature;
};

struct Reference {
  std::vector<double> logp, dx;  // (N), (N, C)
};

Reference reference(const std::vector<float>& W, const std::vector<float>& x, const std::vector<int32_t>& targets,
                    const std::vector<float>& dlogp, const Case& k) {
  Reference r{std::vector<double>(size_t(k.N)), std::vector<double>(size_t(k.N * k.C))};
  std::vector<double> logit(size_t(k.V));
  for (int64_t i = 0; i < k.N; ++i) {
    for (int64_t v = 0; v < k.V; ++v) {
      double s = 0;
      for (int64_t j = 0; j < k.C; ++j) s += double(x[size_t(i * k.C + j)]) * W[size_t(v * k.C + j)];
      logit[size_t(v)] = s / k.temperature;
    }
    const double mx = *std::max_element(logit.begin(), logit.end());
    double z = 0;
    for (double l : logit) z += std::exp(l - mx);
    const int32_t t = targets[size_t(i)];
    if (t < 0) continue;
    r.logp[size_t(i)] = logit[size_t(t)] - mx - std::log(z);
    for (int64_t j = 0; j < k.C; ++j) {
      double mean = 0;
      for (int64_t v = 0; v < k.V; ++v) mean += std::exp(logit[size_t(v)] - mx) / z * W[size_t(v * k.C + j)];
      r.dx[size_t(i * k.C + j)] = dlogp[size_t(i)] / k.temperature * (W[size_t(t * k.C + j)] - mean);
    }
  }
  return r;
}

struct HeadOutput {
  std::vector<float> logp, dx;
};

HeadOutput run_head(const TrainModel& m, const std::vector<float>& W, const std::vector<float>& x,
        const std::vector<int32_t>& targets, const std::vector<float>& dlogp, const Case& k) {
  HeadOutput r{std::vector<float>(size_t(k.N)), std::vector<float>(size_t(k.N * k.C))};
  FrozenHeadScratch s;  // left over from an earlier call, it may hold anything: NaN here
  s.mean.assign(size_t(kFrozenHeadSegments * k.N * k.C), std::nanf(""));
  s.max.assign(size_t(kFrozenHeadSegments * k.N), std::nanf(""));
  s.sum.assign(size_t(kFrozenHeadSegments * k.N), std::nan(""));
  frozen_head_forward(m, W.data(), x.data(), targets, k.N, k.temperature, r.logp.data(), s);
  frozen_head_backward(m, W.data(), targets, dlogp, k.N, k.temperature, s, r.dx.data());
  return r;
}

class FrozenHead : public ::testing::TestWithParam<Case> {};

TEST_P(FrozenHead, MatchesTheDefinitionAndIgnoresTheThreadCount) {
  const Case k = GetParam();
  TrainConfig c{.vocab = int(k.V), .dim = int(k.C), .n_layers = 1, .n_heads = 1, .n_kv_heads = 1, .ffn = 4, .ctx = 8};
  const TrainModel m(c, true);
  Rng rng(uint64_t(k.V * 31 + k.N));
  std::vector<float> W(size_t(k.V * k.C)), x(size_t(k.N * k.C)), dlogp(size_t(k.N));
  // Logits spread over tens of units, so the running max moves and earlier pieces get rescaled.
  for (float& w : W) w = float(rng.normal());
  for (float& v : x) v = 2.0f * float(rng.normal());
  for (float& d : dlogp) d = float(rng.normal());
  std::vector<int32_t> targets(size_t(k.N));
  for (int64_t i = 0; i < k.N; ++i) targets[size_t(i)] = i % 7 == 3 ? -1 : int32_t(rng.below(uint64_t(k.V)));
  targets[0] = int32_t(k.V - 1);  // the last row of the last piece

  const Reference want = reference(W, x, targets, dlogp, k);
  const HeadOutput got = run_head(m, W, x, targets, dlogp, k);
  for (int64_t i = 0; i < k.N; ++i) {
    EXPECT_NEAR(got.logp[size_t(i)], want.logp[size_t(i)], 2e-5 * (1 + std::fabs(want.logp[size_t(i)])))
        << "position " << i;
    for (int64_t j = 0; j < k.C; ++j)
      EXPECT_NEAR(got.dx[size_t(i * k.C + j)], want.dx[size_t(i * k.C + j)], 2e-5 * (1 + std::fabs(dlogp[size_t(i)])))
          << "position " << i << ", column " << j;
  }

  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const HeadOutput one = run_head(m, W, x, targets, dlogp, k);
  omp_set_num_threads(threads);
  EXPECT_EQ(one.logp, got.logp);
  EXPECT_EQ(one.dx, got.dx);
}

// Log-probs only (a reference model's): the same log-probs, and no gradient to take from them.
TEST(FrozenHead, LogProbsOnlyGiveTheSameLogProbsAndNoBackward) {
  const Case k{.V = 1500, .C = 12, .N = 9, .temperature = 1.0f};
  TrainConfig c{.vocab = int(k.V), .dim = int(k.C), .n_layers = 1, .n_heads = 1, .n_kv_heads = 1, .ffn = 4, .ctx = 8};
  const TrainModel m(c, true);
  Rng rng(5);
  std::vector<float> W(size_t(k.V * k.C)), x(size_t(k.N * k.C)), dlogp(size_t(k.N), 1.0f), dx(size_t(k.N * k.C));
  for (float& w : W) w = float(rng.normal());
  for (float& v : x) v = 2.0f * float(rng.normal());
  std::vector<int32_t> targets(size_t(k.N));
  for (int32_t& t : targets) t = int32_t(rng.below(uint64_t(k.V)));
  const HeadOutput full = run_head(m, W, x, targets, dlogp, k);
  FrozenHeadScratch s;
  std::vector<float> logp(size_t(k.N));
  frozen_head_forward(m, W.data(), x.data(), targets, k.N, k.temperature, logp.data(), s, false);
  EXPECT_EQ(logp, full.logp);
  EXPECT_TRUE(s.mean.empty());
  EXPECT_THROW(frozen_head_backward(m, W.data(), targets, dlogp, k.N, k.temperature, s, dx.data()), InvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, FrozenHead,
    ::testing::Values(Case{.V = 40, .C = 8, .N = 5, .temperature = 1.0f},  // one piece: three ranges empty
                      Case{.V = 1500, .C = 12, .N = 9, .temperature = 0.7f},  // six pieces over four ranges
                      Case{.V = 300, .C = 4, .N = 2 * kFrozenHeadRows + 3, .temperature = 1.0f}));  // three row blocks

}  // namespace
}  // namespace ponder
