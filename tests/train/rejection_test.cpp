// Rejection sampling on a tiny policy trained in the test (tests/train/picker_model.h): only
// completions the rewards verify are written, the output is a function of the seed, and bad
// sampling options are clear errors.
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include "core/error.h"
#include "support/option_errors.h"
#include "tasks/dataset.h"
#include "tasks/reward.h"
#include "train/picker_model.h"
#include "train/rejection.h"

namespace ponder {
namespace {

using testing::picker_model;
using testing::picker_rl_data;
using testing::temp_path;

RejectionOptions picker_sampling(const std::string& out, bool alternate) {
  RejectionOptions o;
  o.task.name.clear();
  o.data_path = picker_rl_data(alternate ? "rejection_ab" : "rejection_a", 6, alternate);
  o.model = picker_model();
  o.samples = 8;
  o.count = 6;
  o.max_tokens = 32;
  o.seed = 4;
  o.prompts_per_batch = 4;  // two batches
  o.output = temp_path(out);
  return o;
}

std::string bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Items whose answer is "a": only the short path is correct and well formed; "b": only the long.
TEST(Rejection, WritesOnlyVerifiedCompletions) {
  for (bool alternate : {false, true}) {
    const RejectionOptions o = picker_sampling(alternate ? "ab.jsonl" : "a.jsonl", alternate);
    const RejectionResult r = rejection_sample(o);
    EXPECT_EQ(r.prompts, 6);
    EXPECT_EQ(r.drawn, 48);
    EXPECT_GT(r.accepted, 0);
    EXPECT_LT(r.accepted, r.drawn) << "some completions are wrong and must be rejected";
    const auto written = read_sft_dataset(o.output);
    EXPECT_EQ(int(written.size()), r.unique_accepted);
    const auto items = read_rl_dataset(o.data_path);
    for (const SftExample& e : written) {
      EXPECT_EQ(e.prompt, testing::kPickPrompt);
      EXPECT_EQ(format_reward(e.completion), 1.0f) << e.completion;
      // Some item of the data is answered correctly; with answers "a" only, exactly the short path.
      bool correct = false;
      for (const TaskItem& item : items) correct = correct || accuracy_reward(e.completion, item) == 1.0f;
      EXPECT_TRUE(correct) << e.completion;
      if (!alternate) {
        EXPECT_EQ(e.completion, testing::kShortPath);
      }
    }
    if (alternate) {
      bool long_path = false;
      for (const SftExample& e : written) long_path = long_path || e.completion == testing::kLongPath;
      EXPECT_TRUE(long_path) << "the 'b' items accept the long path";
    }
  }
}

TEST(Rejection, ReproducibleFromItsSeed) {
  RejectionOptions a = picker_sampling("seed_a.jsonl", true), b = picker_sampling("seed_b.jsonl", true);
  b.temperature = a.temperature = 1.5f;  // more varied completions
  b.require_format = a.require_format = false;
  const RejectionResult ra = rejection_sample(a), rb = rejection_sample(b);
  EXPECT_EQ(bytes_of(a.output), bytes_of(b.output));
  EXPECT_EQ(ra.accepted, rb.accepted);
  EXPECT_EQ(ra.unique_accepted, rb.unique_accepted);
  RejectionOptions c = a;
  c.seed = 5;
  c.output = temp_path("seed_c.jsonl");
  const RejectionResult rc = rejection_sample(c);
  EXPECT_TRUE(bytes_of(c.output) != bytes_of(a.output) || rc.accepted != ra.accepted) << "another seed, other paths";
}

TEST(Rejection, SamplingOptionsAreChecked) {
  RejectionOptions base;  // validate() reads no file
  base.task.name = "arith";
  base.model = "unused.gguf";
  base.output = "unused.jsonl";
  ::ponder::testing::expect_option_errors<RejectionOptions>(base, {
      {[](RejectionOptions& o) { o.top_p = 1.5f; }, "--top-p", "(0, 1]", "got 1.5"},
      {[](RejectionOptions& o) { o.top_k = -1; }, "--top-k", ">= 0", "got -1"},
      {[](RejectionOptions& o) { o.samples = 5000; }, "--samples", "[1, 1024]", "got 5000"},
      {[](RejectionOptions& o) { o.temperature = -1.0f; }, "--temperature", "> 0", "got -1"},
      {[](RejectionOptions& o) { o.max_tokens = 0; }, "--max-tokens", ">= 1", "got 0"},
  });
}

}  // namespace
}  // namespace ponder
