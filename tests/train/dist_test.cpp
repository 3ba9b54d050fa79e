// What data-parallel training rests on, checked in one process (the runs under mpirun are in
// tests/app/cli_mpi_test.cpp): the gradient sum is the micro-batch gradients added in order,
// bit for bit; a generation batch rolled out in parts (one per rank) gives the rollouts of rolling
// it out whole; rollouts survive their trip between ranks, and bytes that are not rollouts are a
// clear error.
#include <gtest/gtest.h>

#include "core/error.h"
#include "core/rng.h"
#include "train/dist.h"
#include "train/grpo_step.h"
#include "train/model_io.h"
#include "train/picker_model.h"

namespace ponder {
namespace {

using testing::kPickPrompt;
using testing::picker_model;

TEST(GradientSum, OneProcessAddsTheMicroBatchGradientsInOrder) {
  ASSERT_EQ(dist().size, 1);
  const size_t n = 1000;
  Rng rng(3);
  std::vector<std::vector<float>> g(3, std::vector<float>(n));
  for (auto& v : g)
    for (float& x : v) x = float(rng.uniform() * 2 - 1) * (rng.uniform() < 0.5 ? 1e-6f : 1e3f);
  std::vector<float> want(n);
  for (size_t i = 0; i < n; ++i) want[i] = (g[0][i] + g[1][i]) + g[2][i];  // by hand, in order

  std::vector<float> grads(7, 42.0f);  // resized and zeroed
  GradientSum sum(grads, n, 3);
  ASSERT_EQ(sum.rounds(), 3);
  for (int64_t r = 0; r < sum.rounds(); ++r) {
    ASSERT_EQ(sum.micro(r), r);
    std::vector<float>& buf = sum.buffer(r);
    ASSERT_EQ(buf.size(), n);
    for (float x : buf) ASSERT_EQ(x, 0.0f) << "a micro-batch's gradient starts from zero";
    for (size_t i = 0; i < n; ++i) buf[i] += g[size_t(r)][i];  // as backward_train adds into it
    sum.reduce(r);
  }
  sum.finish();
  ASSERT_EQ(grads.size(), n);
  for (size_t i = 0; i < n; ++i) ASSERT_EQ(grads[i], want[i]) << i;

  GradientSum none(grads, n, 0);  // no micro-batch (a skipped step): zeros
  EXPECT_EQ(none.rounds(), 0);
  none.finish();
  for (float x : grads) ASSERT_EQ(x, 0.0f);
}

TEST(DistCollectives, OneProcessIsTheIdentity) {
  std::vector<double> v = {1.5, -2.0, 0.0};
  dist_collect(v);
  EXPECT_EQ(v, (std::vector<double>{1.5, -2.0, 0.0}));
  EXPECT_EQ(dist_max(-3.25), -3.25);
  EXPECT_EQ(dist_allgather("abc"), std::vector<std::string>{"abc"});
}

// Groups 0..2 of a generation batch rolled out whole, and as two parts [0, 1) and [1, 3), as two
// ranks would: the same completions, log-probabilities and group numbers.
TEST(GrpoRollouts, PartsOfABatchEqualTheWhole) {
  const GgufFile f = read_gguf(picker_model());
  const TrainModel policy = import_gguf(f);
  const auto engine = inference_model(policy, Tokenizer::from_gguf(f));
  GrpoOptions o;
  o.num_generations = 4;
  o.max_completion_length = 24;
  const std::vector<TaskItem> items = {{.prompt = kPickPrompt, .answer = "a"},
                                       {.prompt = std::string("Q: ") + kPickPrompt, .answer = "b"},
                                       {.prompt = kPickPrompt, .answer = "a"}};
  const uint64_t seed = rollout_seed(11, 2, 0);
  const std::vector<Rollout> whole = generate_rollouts(*engine, items, o, seed);
  std::vector<Rollout> parts = generate_rollouts(*engine, items, o, seed, 0, 1);
  const std::vector<Rollout> second = generate_rollouts(*engine, items, o, seed, 1, 3);
  parts.insert(parts.end(), second.begin(), second.end());
  ASSERT_EQ(whole.size(), 12u);
  ASSERT_EQ(parts.size(), whole.size());
  int distinct = 0;
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(parts[i].group, whole[i].group) << i;
    EXPECT_EQ(parts[i].group, int(i / 4)) << i;
    EXPECT_EQ(parts[i].prompt, whole[i].prompt) << i;
    EXPECT_EQ(parts[i].completion, whole[i].completion) << i;
    EXPECT_EQ(parts[i].rollout_logp, whole[i].rollout_logp) << i;  // bitwise: float ==
    EXPECT_EQ(parts[i].text, whole[i].text) << i;
    distinct += i > 0 && whole[i].completion != whole[i - 1].completion;
  }
  EXPECT_GT(distinct, 0) << "the paths are sampled, not all the same";
}

TEST(GrpoRollouts, PackAndUnpack) {
  std::vector<Rollout> rs(2);
  rs[0] = {.prompt = {1, 2, 3}, .completion = {4, 5}, .rollout_logp = {-0.5f, -1.25f}, .old_logp = {}, .ref_logp = {},
           .text = "x </think> 5", .reward = 1.5f, .advantage = 0, .accuracy = 1, .format = 0.5f, .truncated = true,
           .group = 7};
  rs[1] = {.prompt = {9}, .completion = {}, .rollout_logp = {}, .old_logp = {}, .ref_logp = {}, .text = "",
           .reward = -2, .advantage = 0, .accuracy = 0, .format = 0, .truncated = false, .group = 8};
  const std::string bytes = pack_rollouts(rs);
  std::vector<Rollout> back(1);  // appends
  unpack_rollouts(bytes, back);
  ASSERT_EQ(back.size(), 3u);
  for (size_t i = 0; i < 2; ++i) {
    const Rollout &a = rs[i], &b = back[i + 1];
    EXPECT_EQ(b.prompt, a.prompt);
    EXPECT_EQ(b.completion, a.completion);
    EXPECT_EQ(b.rollout_logp, a.rollout_logp);
    EXPECT_EQ(b.text, a.text);
    EXPECT_EQ(b.reward, a.reward);
    EXPECT_EQ(b.accuracy, a.accuracy);
    EXPECT_EQ(b.format, a.format);
    EXPECT_EQ(b.truncated, a.truncated);
    EXPECT_EQ(b.group, a.group);
  }
  // Every cut of the bytes, and bytes after the last record, are errors, never a crash.
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    std::vector<Rollout> out;
    EXPECT_THROW(unpack_rollouts(bytes.substr(0, cut), out), FormatError) << cut;
  }
  std::vector<Rollout> out;
  EXPECT_THROW(unpack_rollouts(bytes + "x", out), FormatError);
  std::string huge = bytes;
  huge[8] = '\xff';  // the first prompt's length: far more items than bytes
  EXPECT_THROW(unpack_rollouts(huge, out), FormatError);
}

}  // namespace
}  // namespace ponder
