// Sampling stages and pickers against hand-computed numbers, against an independent float64 version
// of the whole chain (written here, sharing no code with src/decode/sampling.cpp), and a chi-square
// test of the draw frequencies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "decode/sampling.h"

namespace {

using ponder::Candidates;
using ponder::InvalidArgument;
using ponder::Rng;
using ponder::Sampler;
using ponder::SamplingOptions;
using ponder::TokenCounts;

Candidates make(const std::vector<float>& logits) {
  Candidates c;
  c.assign(logits);
  return c;
}

std::vector<int32_t> ids_of(const Candidates& c) {
  std::vector<int32_t> ids;
  for (const auto& x : c.items) ids.push_back(x.id);
  return ids;
}

float logit_of(const Candidates& c, int32_t id) {
  for (const auto& x : c.items)
    if (x.id == id) return x.logit;
  ADD_FAILURE() << "id " << id << " not among the candidates";
  return std::nanf("");
}

std::vector<float> random_logits(size_t n, uint64_t seed, double scale, double quantum = 0) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) {
    double y = rng.normal() * scale;
    if (quantum > 0) y = std::round(y / quantum) * quantum;  // many exact ties
    x = float(y);
  }
  return v;
}

// ---- the independent reference: the whole chain in float64 over plain vectors ----

struct RefChain {
  std::vector<std::pair<int32_t, double>> bias;
  std::vector<int32_t> prompt, generated;
  double repetition = 1, frequency = 0, presence = 0, temperature = 1, top_p = 1, min_p = 0;
  int top_k = 0;
};

// Ids sorted by value descending, lower id first on ties.
std::vector<int32_t> order_desc(const std::vector<double>& l, const std::vector<int32_t>& ids) {
  std::vector<int32_t> o = ids;
  std::sort(o.begin(), o.end(),
            [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
  return o;
}

std::vector<double> softmax_over(const std::vector<double>& l, const std::vector<int32_t>& ids) {
  std::vector<double> p(l.size(), 0.0);
  double mx = -INFINITY, sum = 0;
  for (int32_t i : ids) mx = std::max(mx, l[i]);
  for (int32_t i : ids) sum += std::exp(l[i] - mx);
  for (int32_t i : ids) p[i] = std::exp(l[i] - mx) / sum;
  return p;
}

// The probability of each id after the chain (0 for dropped ids). min_cut_gap: the smallest
// distance seen between a top-p / min-p cut and its threshold, so a test can make sure its case is
// not decided by rounding.
std::vector<double> reference_probs(const std::vector<float>& raw, const RefChain& r, double* min_cut_gap) {
  const int n = int(raw.size());
  std::vector<double> l(raw.begin(), raw.end());
  for (auto [id, b] : r.bias) l[id] += b;
  std::vector<int> in_prompt(n, 0), n_gen(n, 0);
  for (int32_t id : r.prompt) in_prompt[id] = 1;
  for (int32_t id : r.generated) ++n_gen[id];
  for (int i = 0; i < n; ++i) {
    if (in_prompt[i] || n_gen[i]) l[i] = l[i] > 0 ? l[i] / r.repetition : l[i] * r.repetition;
    l[i] -= n_gen[i] * r.frequency + (n_gen[i] > 0 ? r.presence : 0.0);
    l[i] /= r.temperature;
  }
  std::vector<int32_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  ids = order_desc(l, ids);
  if (r.top_k > 0 && r.top_k < n) ids.resize(r.top_k);
  double gap = INFINITY;
  if (r.top_p < 1) {
    const auto p = softmax_over(l, ids);
    double mass = 0;
    size_t keep = 0;
    while (keep < ids.size() && mass < r.top_p) mass += p[ids[keep++]];
    gap = std::min({gap, std::abs(mass - r.top_p), std::abs(mass - p[ids[keep - 1]] - r.top_p)});
    ids.resize(keep);
  }
  if (r.min_p > 0) {
    const auto p = softmax_over(l, ids);
    const double cut = r.min_p * p[ids[0]];
    std::vector<int32_t> kept;
    for (int32_t i : ids) {
      gap = std::min(gap, std::abs(p[i] - cut));
      if (p[i] >= cut) kept.push_back(i);
    }
    ids = kept;
  }
  if (min_cut_gap) *min_cut_gap = gap;
  return softmax_over(l, ids);
}

// Survival function of the chi-square distribution for integer df (closed forms of the
// regularized upper incomplete gamma function at half-integers).
double chi2_sf(double x, int df) {
  const double h = x / 2;
  double s = 0;
  if (df % 2 == 0) {
    double term = 1;
    for (int i = 0; i < df / 2; ++i, term *= h / i) s += term;
    return std::exp(-h) * s;
  }
  for (int i = 1; i <= df / 2; ++i) s += std::pow(h, i - 0.5) / std::tgamma(i + 0.5);
  return std::erfc(std::sqrt(h)) + std::exp(-h) * s;
}

// Chi-square goodness of fit of counts against probs; asserts no draw of a dropped id and a p-value
// above 1e-6 (a fixed seed makes the outcome deterministic; the bound keeps it meaningful).
void expect_fits(const std::vector<int64_t>& counts, const std::vector<double>& probs, int64_t n_draws) {
  double chi2 = 0;
  int categories = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] == 0) {
      EXPECT_EQ(counts[i], 0) << "id " << i << " was dropped but drawn";
      continue;
    }
    const double expected = probs[i] * double(n_draws);
    chi2 += (double(counts[i]) - expected) * (double(counts[i]) - expected) / expected;
    ++categories;
  }
  ASSERT_GE(categories, 2);
  EXPECT_GT(chi2_sf(chi2, categories - 1), 1e-6) << "chi2 " << chi2 << " df " << categories - 1;
}

// ---- Candidates ----

TEST(SamplingCandidates, AssignKeepsIdOrderAndReusesCapacity) {
  Candidates c = make({0.5f, -1.0f, 2.0f, 3.0f, 4.0f});
  c.sorted = true;
  const auto* data = c.items.data();
  const size_t cap = c.items.capacity();
  const std::vector<float> shorter = {7.0f, 8.0f, 9.0f};
  c.assign(shorter);
  EXPECT_EQ(c.items.data(), data);
  EXPECT_EQ(c.items.capacity(), cap);
  EXPECT_FALSE(c.sorted);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(c.items[2].logit, 9.0f);
}

TEST(SamplingCandidates, SortDescBreaksTiesTowardsLowerId) {
  Candidates c = make({1, 3, 3, 0, 3});
  c.sort_desc();
  EXPECT_TRUE(c.sorted);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{1, 2, 4, 0, 3}));
}

TEST(SamplingCandidates, SoftmaxMatchesHand) {
  // exp(0) : exp(ln 2) : exp(ln 3) = 1 : 2 : 3, so p = 1/6, 2/6, 3/6.
  Candidates c = make({0.0f, std::log(2.0f), std::log(3.0f)});
  c.softmax();
  EXPECT_NEAR(c.items[0].p, 1.0 / 6, 1e-7);
  EXPECT_NEAR(c.items[1].p, 2.0 / 6, 1e-7);
  EXPECT_NEAR(c.items[2].p, 3.0 / 6, 1e-7);
  // Shifted by 1000: the same probabilities (a naive exp would overflow).
  Candidates big = make({1000.0f, 1000.0f + std::log(2.0f), 1000.0f + std::log(3.0f)});
  big.softmax();
  EXPECT_NEAR(big.items[2].p, 0.5, 1e-4);
}

// ---- stages 1-3 ----

TEST(SamplingStages, LogitBiasAddsToListedIds) {
  Candidates c = make({1, 2, 3, 4});
  const std::vector<std::pair<int32_t, float>> bias = {{0, 0.5f}, {3, -10.0f}, {0, 0.25f}};
  ponder::apply_logit_bias(c, bias);
  EXPECT_FLOAT_EQ(logit_of(c, 0), 1.75f);  // 1 + 0.5 + 0.25 (listed twice: both apply)
  EXPECT_FLOAT_EQ(logit_of(c, 1), 2.0f);
  EXPECT_FLOAT_EQ(logit_of(c, 2), 3.0f);
  EXPECT_FLOAT_EQ(logit_of(c, 3), -6.0f);  // 4 - 10
}

TEST(SamplingStages, RepetitionDividesPositiveMultipliesNegativeOncePerId) {
  TokenCounts counts;
  const std::vector<int32_t> prompt = {0, 0, 1};
  counts.add_prompt(prompt);
  for (int32_t id : {1, 3, 3}) counts.add_generated(id);
  // penalty 2 on ids 0, 1, 3 (in prompt or generated; each once however often it occurs):
  //   id 0:  2.0 / 2 = 1.0      id 1: -1.0 * 2 = -2.0 (in both, still once)
  //   id 2:  3.0 untouched      id 3:  0.5 / 2 = 0.25  id 4: -2.0 untouched
  const std::vector<float> logits = {2.0f, -1.0f, 3.0f, 0.5f, -2.0f};
  const std::vector<float> expected = {1.0f, -2.0f, 3.0f, 0.25f, -2.0f};
  Candidates c = make(logits);
  ponder::apply_repetition_penalty(c, counts, 2.0f);
  for (int32_t id = 0; id < 5; ++id) EXPECT_FLOAT_EQ(logit_of(c, id), expected[id]) << id;
  // The same on candidates no longer in id order.
  Candidates shuffled = make(logits);
  shuffled.sort_desc();
  ponder::apply_repetition_penalty(shuffled, counts, 2.0f);
  for (int32_t id = 0; id < 5; ++id) EXPECT_FLOAT_EQ(logit_of(shuffled, id), expected[id]) << id;
  EXPECT_FALSE(shuffled.sorted);
  // penalty 1 is off.
  Candidates off = make(logits);
  ponder::apply_repetition_penalty(off, counts, 1.0f);
  for (int32_t id = 0; id < 5; ++id) EXPECT_EQ(logit_of(off, id), logits[id]);
}

TEST(SamplingStages, FrequencyPresenceFollowOpenAI) {
  TokenCounts counts;
  const std::vector<int32_t> prompt = {0, 0, 0};
  counts.add_prompt(prompt);  // the prompt does not count
  for (int32_t id : {1, 2, 2, 2}) counts.add_generated(id);
  // logit - count * frequency - (count > 0) * presence, frequency 0.5, presence 0.25:
  //   id 0: 1   id 1: 1 - 0.5 - 0.25 = 0.25   id 2: 1 - 1.5 - 0.25 = -0.75   id 3: 1
  Candidates c = make({1, 1, 1, 1});
  ponder::apply_frequency_presence(c, counts, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(logit_of(c, 0), 1.0f);
  EXPECT_FLOAT_EQ(logit_of(c, 1), 0.25f);
  EXPECT_FLOAT_EQ(logit_of(c, 2), -0.75f);
  EXPECT_FLOAT_EQ(logit_of(c, 3), 1.0f);
  // Negative values encourage repeats: id 1: 1 + 0.5 + 1 = 2.5, id 2: 1 + 1.5 + 1 = 3.5.
  Candidates n = make({1, 1, 1, 1});
  ponder::apply_frequency_presence(n, counts, -0.5f, -1.0f);
  EXPECT_FLOAT_EQ(logit_of(n, 1), 2.5f);
  EXPECT_FLOAT_EQ(logit_of(n, 2), 3.5f);
}

// ---- stages 4-7 ----

TEST(SamplingStages, TemperatureDivides) {
  Candidates c = make({2.0f, -1.0f, 0.5f});
  ponder::apply_temperature(c, 0.5f);  // {4, -2, 1}
  EXPECT_FLOAT_EQ(logit_of(c, 0), 4.0f);
  EXPECT_FLOAT_EQ(logit_of(c, 1), -2.0f);
  EXPECT_FLOAT_EQ(logit_of(c, 2), 1.0f);
  ponder::apply_temperature(c, 4.0f);  // {1, -0.5, 0.25}
  EXPECT_FLOAT_EQ(logit_of(c, 0), 1.0f);
  EXPECT_FLOAT_EQ(logit_of(c, 1), -0.5f);
  EXPECT_FLOAT_EQ(logit_of(c, 2), 0.25f);
}

TEST(SamplingStages, TopKKeepsExactlyKLowerIdsWinTies) {
  const std::vector<float> logits = {1, 5, 3, 5, 3, 0};
  Candidates c = make(logits);
  ponder::apply_top_k(c, 3);  // the two 5s (ids 1, 3), then of the 3s (ids 2, 4) id 2
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{1, 3, 2}));
  EXPECT_TRUE(c.sorted);
  Candidates four = make(logits);
  ponder::apply_top_k(four, 4);
  EXPECT_EQ(ids_of(four), (std::vector<int32_t>{1, 3, 2, 4}));
  for (int k : {0, -1, 6, 10}) {  // off: nothing removed, nothing reordered
    Candidates off = make(logits);
    ponder::apply_top_k(off, k);
    EXPECT_EQ(ids_of(off), (std::vector<int32_t>{0, 1, 2, 3, 4, 5})) << k;
  }
}

TEST(SamplingStages, TopKOnALargeVocabMatchesAFullSort) {
  const auto logits = random_logits(20000, 7, 2.0, 0.05);  // quantized: ties cross the cut
  std::vector<int32_t> all(logits.size());
  std::iota(all.begin(), all.end(), 0);
  const auto expected = order_desc(std::vector<double>(logits.begin(), logits.end()), all);
  for (int k : {1, 40, 1000, 5000}) {  // 5000: past the heap, through nth_element
    Candidates c = make(logits);
    ponder::apply_top_k(c, k);
    EXPECT_EQ(ids_of(c), std::vector<int32_t>(expected.begin(), expected.begin() + k)) << k;
  }
}

TEST(SamplingStages, TopPKeepsSmallestSetReachingP) {
  // p = 0.2, 0.5, 0.3 for ids 0, 1, 2; largest first: id 1 (0.5), id 2 (0.3), id 0 (0.2).
  const std::vector<float> logits = {std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  const auto kept = [&](float p) {
    Candidates c = make(logits);
    ponder::apply_top_p(c, p);
    return ids_of(c);
  };
  EXPECT_EQ(kept(0.8f), (std::vector<int32_t>{1, 2}));      // 0.5 + 0.3 = 0.8 reaches 0.8 exactly
  EXPECT_EQ(kept(0.81f), (std::vector<int32_t>{1, 2, 0}));  // 0.8 < 0.81: needs all three
  EXPECT_EQ(kept(0.5f), (std::vector<int32_t>{1}));         // 0.5 alone reaches 0.5
  EXPECT_EQ(kept(0.49f), (std::vector<int32_t>{1}));
  EXPECT_EQ(kept(0.51f), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(kept(1e-9f), (std::vector<int32_t>{1}));        // at least one always stays
  EXPECT_EQ(kept(1.0f), (std::vector<int32_t>{0, 1, 2}));   // off: untouched, id order
}

TEST(SamplingStages, TopPOnALargeVocabMatchesFloat64) {
  // Flat enough that the nuclei run from a few candidates (the 64 front) through hundreds (the
  // 1024 front) to thousands (the histogram front); quantized, so ties straddle the cuts.
  const auto logits = random_logits(20000, 11, 1.0, 0.01);
  std::vector<int32_t> all(logits.size());
  std::iota(all.begin(), all.end(), 0);
  const std::vector<double> l(logits.begin(), logits.end());
  const auto order = order_desc(l, all);
  const auto p = softmax_over(l, all);
  for (double top_p : {0.01, 0.1, 0.3, 0.9, 0.99}) {
    double mass = 0;
    size_t keep = 0;
    while (mass < top_p) mass += p[order[keep++]];
    const double gap = std::min(mass - top_p, top_p - (mass - p[order[keep - 1]]));
    ASSERT_GT(gap, 1e-6) << "a case decided by rounding";
    Candidates c = make(logits);
    ponder::apply_top_p(c, float(top_p));
    const std::vector<int32_t> nucleus(order.begin(), order.begin() + std::ptrdiff_t(keep));
    EXPECT_EQ(ids_of(c), nucleus) << top_p;
    EXPECT_TRUE(c.sorted);
  }
}

TEST(SamplingStages, MinPDropsBelowFractionOfMax) {
  // p = 0.25, 0.1, 0.5, 0.15 for ids 0..3; p_max = 0.5.
  const std::vector<float> logits = {std::log(0.25f), std::log(0.1f), std::log(0.5f), std::log(0.15f)};
  const auto kept = [&](float min_p) {
    Candidates c = make(logits);
    ponder::apply_min_p(c, min_p);
    return ids_of(c);
  };
  EXPECT_EQ(kept(0.25f), (std::vector<int32_t>{0, 2, 3}));  // cut 0.125: drops 0.1 only, order kept
  EXPECT_EQ(kept(0.35f), (std::vector<int32_t>{0, 2}));     // cut 0.175: drops 0.1 and 0.15
  EXPECT_EQ(kept(0.6f), (std::vector<int32_t>{2}));         // cut 0.3: only the max
  EXPECT_EQ(kept(1.0f), (std::vector<int32_t>{2}));         // the max always stays
  EXPECT_EQ(kept(0.0f), (std::vector<int32_t>{0, 1, 2, 3}));
  // Scale invariance: a shift of every logit changes nothing.
  Candidates shifted = make({std::log(0.25f) + 50, std::log(0.1f) + 50, std::log(0.5f) + 50,
                             std::log(0.15f) + 50});
  ponder::apply_min_p(shifted, 0.25f);
  EXPECT_EQ(ids_of(shifted), (std::vector<int32_t>{0, 2, 3}));
}

TEST(SamplingCandidates, NanLogitIsNeverChosen) {
  const float nan = std::nanf("");
  const std::vector<float> logits = {nan, 1.0f, 0.0f, nan};
  Candidates c = make(logits);
  EXPECT_EQ(c.items[0].logit, -std::numeric_limits<float>::infinity());
  Sampler greedy(SamplingOptions{.temperature = 0.0f}, Rng(1));
  EXPECT_EQ(greedy.sample(logits), 1);
  Sampler s(SamplingOptions{.top_k = 3, .top_p = 0.99f}, Rng(1));
  for (int i = 0; i < 2000; ++i) {
    const int32_t id = s.sample(logits);
    ASSERT_TRUE(id == 1 || id == 2) << id;
  }
}

// ---- pickers ----

TEST(SamplingPick, ArgmaxTakesLowestIdOnTies) {
  EXPECT_EQ(ponder::pick_argmax(make({1, 4, 2, 4})), 1);
  EXPECT_EQ(ponder::pick_argmax(make({4, 4, 4})), 0);
  EXPECT_EQ(ponder::pick_argmax(make({-3, -1, -2})), 1);
  Candidates sorted = make({1, 4, 2, 4});
  sorted.sort_desc();
  EXPECT_EQ(ponder::pick_argmax(sorted), 1);
}

TEST(SamplingPick, DrawWalksCandidatesInTheirOrder) {
  // p = 0.2, 0.5, 0.3 for ids 0, 1, 2. In id order, u < 0.2 -> 0, u < 0.7 -> 1, else 2; sorted
  // (ids 1, 2, 0): u < 0.5 -> 1, u < 0.8 -> 2, else 0. The u is read from a copy of the rng.
  const std::vector<float> logits = {std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  Rng rng(42);
  for (int i = 0; i < 2000; ++i) {
    Rng copy = rng;
    const double u = copy.uniform();
    const bool sorted = i % 2 == 1;
    Candidates c = make(logits);
    if (sorted) c.sort_desc();
    const int32_t got = ponder::pick_draw(c, rng);
    const int32_t want = sorted ? (u < 0.5 ? 1 : u < 0.8 ? 2 : 0) : (u < 0.2 ? 0 : u < 0.7 ? 1 : 2);
    const bool near_edge = std::abs(u - 0.2) < 1e-6 || std::abs(u - 0.5) < 1e-6 ||
                           std::abs(u - 0.7) < 1e-6 || std::abs(u - 0.8) < 1e-6;
    if (!near_edge) {
      ASSERT_EQ(got, want) << "u " << u << " sorted " << sorted;
    }
    EXPECT_EQ(rng.state()[0], copy.state()[0]);  // exactly one uniform() per draw
  }
}

TEST(SamplingPick, DrawNeverPicksAMaskedCandidate) {
  const float inf = std::numeric_limits<float>::infinity();
  Rng rng(3);
  for (int i = 0; i < 5000; ++i) {
    Candidates c = make({0.0f, -inf, 0.0f, -inf});
    const int32_t id = ponder::pick_draw(c, rng);
    ASSERT_TRUE(id == 0 || id == 2) << id;
  }
}

// ---- Sampler ----

TEST(SamplingSampler, GreedyPenalizesThenTakesArgmaxWithoutRandomness) {
  SamplingOptions opt{.temperature = 0.0f, .top_k = 1, .repetition_penalty = 1.5f};
  Sampler s(opt, Rng(5));
  const std::vector<int32_t> prompt = {0};
  s.set_prompt(prompt);
  const std::vector<float> logits = {3.0f, 2.9f, 1.0f};
  const uint64_t before = s.rng().state()[0];
  // Step 1: id 0 is in the prompt: 3 / 1.5 = 2 < 2.9, so id 1.
  EXPECT_EQ(s.sample(logits), 1);
  // Step 2: id 1 was generated: 2.9 / 1.5 = 1.933 < 2, so id 0.
  EXPECT_EQ(s.sample(logits), 0);
  EXPECT_EQ(s.rng().state()[0], before);
  // Ties go to the lowest id.
  Sampler t(SamplingOptions{.temperature = 0.0f}, Rng(5));
  const std::vector<float> tied = {1.0f, 7.0f, 7.0f};
  EXPECT_EQ(t.sample(tied), 1);
}

// Plain greedy (no bias, no penalty) reads the argmax off the logits without building
// candidates; it must choose what pick_argmax chooses over Candidates::assign's list, NaNs and
// ties included.
TEST(SamplingSampler, PlainGreedyChoosesWhatPickArgmaxChooses) {
  const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
  std::vector<std::vector<float>> cases = {
      {nan, 1.0f, 0.0f, nan}, {nan, nan, nan}, {-inf, -inf}, {nan, -inf, 2.0f, 2.0f, nan},
      {5.0f}, {0.0f, -0.0f, 0.0f}, {1, 2, 3, 4, 5, 5, 5, 4}, {-inf, nan, -inf},
  };
  Rng rng(11);
  for (int r = 0; r < 20; ++r) {  // a large vocabulary with a few ties at the top
    std::vector<float> v(151936 + size_t(r));
    for (float& x : v) x = float(int(rng.below(2000))) / 100.0f;
    v[rng.below(v.size())] = nan;
    cases.push_back(v);
  }
  for (const std::vector<float>& logits : cases) {
    Sampler greedy(SamplingOptions{.temperature = 0.0f}, Rng(1));
    EXPECT_EQ(greedy.sample(logits), ponder::pick_argmax(make(logits))) << logits.size();
  }
}

TEST(SamplingSampler, AcceptAndLogitBiasReachTheStages) {
  // Only frequency 2 on the accepted id 0: 5 - 2 = 3 < 4, so greedy picks id 1.
  SamplingOptions opt{.temperature = 0.0f, .frequency_penalty = 2.0f};
  Sampler s(opt, Rng(1));
  s.accept(0);
  const std::vector<float> logits = {5.0f, 4.0f};
  EXPECT_EQ(s.sample(logits), 1);
  // A bias of -100 removes id 0 from contention in a sampled run.
  Sampler b(SamplingOptions{.logit_bias = {{0, -100.0f}}}, Rng(1));
  for (int i = 0; i < 100; ++i) ASSERT_EQ(b.sample(logits), 1);
}

TEST(SamplingSampler, FrequenciesMatchFloat64Chain) {
  // 6 scripted logits through temperature 0.7, top-k 5, top-p 0.9 (worked by hand: after /0.7 and
  // top-k 5 the probabilities are .351 .351 .172 .084 .041, cumulative .70 .87 .96: keeps 4).
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 2.0f, -1.0f, 1.5f};
  const SamplingOptions opt{.temperature = 0.7f, .top_k = 5, .top_p = 0.9f};
  double gap = 0;
  const auto probs = reference_probs(logits, {.temperature = 0.7, .top_p = 0.9, .top_k = 5}, &gap);
  ASSERT_GT(gap, 1e-3);
  ASSERT_EQ(std::count_if(probs.begin(), probs.end(), [](double p) { return p > 0; }), 4);
  Sampler s(opt, Rng(2024));
  const int64_t n_draws = 200000;
  std::vector<int64_t> counts(logits.size(), 0);
  for (int64_t i = 0; i < n_draws; ++i) ++counts[size_t(s.sample(logits))];
  expect_fits(counts, probs, n_draws);
}

TEST(SamplingSampler, PenalizedChainFrequenciesMatchFloat64) {
  // All stages, run as the Sampler runs them, with fixed counts (a Sampler would add each draw).
  const std::vector<float> logits = {0.3f, 1.2f, -0.4f, 2.0f, 0.8f, 1.1f, -2.0f, 0.0f};
  TokenCounts counts;
  const std::vector<int32_t> prompt = {1, 2};
  counts.add_prompt(prompt);
  for (int32_t id : {3, 3, 5}) counts.add_generated(id);
  const std::vector<std::pair<int32_t, float>> bias = {{6, 1.5f}};
  RefChain ref{.bias = {{6, 1.5}}, .prompt = prompt, .generated = {3, 3, 5}, .repetition = 1.3,
               .frequency = 0.4, .presence = 0.3, .temperature = 1.3, .min_p = 0.3};
  double gap = 0;
  const auto probs = reference_probs(logits, ref, &gap);
  ASSERT_GT(gap, 1e-3);
  Rng rng(77);
  const int64_t n_draws = 200000;
  std::vector<int64_t> drawn(logits.size(), 0);
  Candidates c;
  for (int64_t i = 0; i < n_draws; ++i) {
    c.assign(logits);
    ponder::apply_logit_bias(c, bias);
    ponder::apply_repetition_penalty(c, counts, 1.3f);
    ponder::apply_frequency_presence(c, counts, 0.4f, 0.3f);
    ponder::apply_temperature(c, 1.3f);
    ponder::apply_min_p(c, 0.3f);
    ++drawn[size_t(ponder::pick_draw(c, rng))];
  }
  expect_fits(drawn, probs, n_draws);
}

TEST(SamplingSampler, ChiSquareCatchesAWrongDistribution) {
  // The check itself can fail: draws from the plain softmax do not fit the temperature-0.7 chain.
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, 2.0f, -1.0f, 1.5f};
  const auto probs = reference_probs(logits, {.temperature = 0.7}, nullptr);
  Sampler s(SamplingOptions{}, Rng(9));
  const int64_t n_draws = 200000;
  std::vector<int64_t> counts(logits.size(), 0);
  for (int64_t i = 0; i < n_draws; ++i) ++counts[size_t(s.sample(logits))];
  double chi2 = 0;
  for (size_t i = 0; i < probs.size(); ++i)
    chi2 += std::pow(double(counts[i]) - probs[i] * n_draws, 2) / (probs[i] * n_draws);
  EXPECT_LT(chi2_sf(chi2, 5), 1e-6);
  // And the closed forms of chi2_sf against known quantiles: P(chi2_1 > 3.841) = 0.05,
  // P(chi2_4 > 9.488) = 0.05, P(chi2_5 > 11.070) = 0.05.
  EXPECT_NEAR(chi2_sf(3.841459, 1), 0.05, 1e-6);
  EXPECT_NEAR(chi2_sf(9.487729, 4), 0.05, 1e-6);
  EXPECT_NEAR(chi2_sf(11.070498, 5), 0.05, 1e-6);
}

TEST(SamplingSampler, SameSeedSameDrawsDerivedPathsDiffer) {
  const auto logits = random_logits(1000, 123, 1.0);
  const SamplingOptions opt{.temperature = 0.9f, .top_k = 200, .top_p = 0.95f, .repetition_penalty = 1.1f};
  const auto run = [&](Rng rng) {
    Sampler s(opt, rng);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.sample(logits));
    return out;
  };
  const auto a = run(Rng::derive(2025, 0));
  EXPECT_EQ(a, run(Rng::derive(2025, 0)));
  EXPECT_NE(a, run(Rng::derive(2025, 1)));
  EXPECT_NE(a, run(Rng::derive(2026, 0)));
}

// ---- validate ----

TEST(SamplingValidate, EachBadFieldThrowsNamingIt) {
  const int32_t n_vocab = 10;
  const std::vector<std::pair<std::string, std::function<void(SamplingOptions&)>>> bad = {
      {"temperature", [](SamplingOptions& o) { o.temperature = -0.1f; }},
      {"temperature", [](SamplingOptions& o) { o.temperature = std::nanf(""); }},
      {"temperature", [](SamplingOptions& o) { o.temperature = INFINITY; }},
      {"repetition_penalty", [](SamplingOptions& o) { o.repetition_penalty = INFINITY; }},
      {"top_p", [](SamplingOptions& o) { o.top_p = 0.0f; }},
      {"top_p", [](SamplingOptions& o) { o.top_p = 1.5f; }},
      {"min_p", [](SamplingOptions& o) { o.min_p = -0.1f; }},
      {"min_p", [](SamplingOptions& o) { o.min_p = 1.1f; }},
      {"repetition_penalty", [](SamplingOptions& o) { o.repetition_penalty = 0.0f; }},
      {"repetition_penalty", [](SamplingOptions& o) { o.repetition_penalty = -1.0f; }},
      {"top_k", [](SamplingOptions& o) { o.top_k = -1; }},
      {"logit_bias", [](SamplingOptions& o) { o.logit_bias = {{10, 1.0f}}; }},
      {"logit_bias", [](SamplingOptions& o) { o.logit_bias = {{-1, 1.0f}}; }},
      {"logit_bias", [](SamplingOptions& o) { o.logit_bias = {{3, INFINITY}}; }},
      {"frequency_penalty", [](SamplingOptions& o) { o.frequency_penalty = 2.5f; }},
      {"frequency_penalty", [](SamplingOptions& o) { o.frequency_penalty = -2.5f; }},
      {"presence_penalty", [](SamplingOptions& o) { o.presence_penalty = 2.01f; }},
      {"presence_penalty", [](SamplingOptions& o) { o.presence_penalty = -3.0f; }},
  };
  for (const auto& [field, spoil] : bad) {
    SamplingOptions o;
    spoil(o);
    try {
      o.validate(n_vocab);
      ADD_FAILURE() << field << ": no throw";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("got"), std::string::npos) << e.what();
    }
  }
  SamplingOptions o;
  o.top_p = 1.5f;
  try {
    o.validate(n_vocab);
    ADD_FAILURE() << "no throw";
  } catch (const InvalidArgument& e) {
    EXPECT_STREQ(e.what(), "top_p must be in (0, 1], got 1.5");
  }
}

TEST(SamplingValidate, BoundaryValuesAreAccepted) {
  const SamplingOptions edges[] = {
      SamplingOptions{},
      {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f},
      {.top_p = 1e-6f, .min_p = 1.0f, .repetition_penalty = 1e-3f},
      {.frequency_penalty = 2.0f, .presence_penalty = -2.0f, .logit_bias = {{0, -100.0f}, {9, 100.0f}}},
      {.logit_bias = {{5, -INFINITY}}},  // bans token 5
      {.frequency_penalty = -2.0f, .presence_penalty = 2.0f},
  };
  for (const auto& o : edges) EXPECT_NO_THROW(o.validate(10));
}

}  // namespace
