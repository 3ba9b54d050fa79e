// The GRPO loop end to end on a tiny policy trained in the test (tests/train/picker_model.h):
// advantages move log-probabilities the right way, each option has its effect (num_iterations,
// beta, mask_truncated_completions, dynamic sampling), resume reproduces an uninterrupted run bit
// for bit, and bad options are clear errors.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/option_errors.h"
#include "train/checkpoint.h"
#include "train/grpo.h"
#include "train/grpo_step.h"
#include "train/model_io.h"
#include "train/picker_model.h"
#include "train/rollout_logp.h"

namespace ponder {
namespace {

namespace fs = std::filesystem;
using testing::kLongTokens;
using testing::kPickPrompt;
using testing::kShortTokens;
using testing::picker_model;
using testing::picker_rl_data;
using testing::temp_path;

std::string fresh_dir(const std::string& name) {
  const std::string p = temp_path("grpo_" + name);
  fs::remove_all(p);
  return p;
}

GrpoOptions picker_run(const std::string& name) {
  GrpoOptions o;
  o.task.name.clear();
  o.data_path = picker_rl_data("grpo_data", 4, false);
  o.model = picker_model();
  o.steps = 3;
  o.prompts_per_step = 2;
  o.num_generations = 4;
  o.max_completion_length = 32;
  o.rewards = "accuracy:1";
  o.adamw.lr = 5e-4f;
  o.warmup = 0;
  o.seed = 7;
  o.out_dir = fresh_dir(name);
  o.quiet = true;
  return o;
}

// The step lines of OUT/metrics.jsonl.
std::vector<nlohmann::json> step_metrics(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("reward_mean")) out.push_back(j);
  }
  return out;
}

std::vector<float> params_of(const std::string& gguf) { return import_gguf(read_gguf(gguf)).params; }

std::string bytes_of(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The LoRA run `whole` (already run) stopped after 3 steps and resumed writes the same merged
// model and adapter.
void expect_resume_writes_the_same(const GrpoOptions& whole, const std::string& part_name) {
  GrpoOptions part = whole;
  part.out_dir = fresh_dir(part_name);
  part.stop_after = 3;
  run_grpo(part);
  part.stop_after = 0;
  part.resume = true;
  run_grpo(part);
  EXPECT_EQ(bytes_of(whole.out_dir + "/model.gguf"), bytes_of(part.out_dir + "/model.gguf"));
  EXPECT_EQ(bytes_of(whole.out_dir + "/lora.gguf"), bytes_of(part.out_dir + "/lora.gguf"));
}

// log p(completion | prompt) under m, from the training forward.
double sequence_logp(const TrainModel& m, const Rollout& r, float temperature) {
  double sum = 0;
  for (double lp : ::ponder::testing::completion_logp_alone(m, r, temperature)) sum += lp;
  return sum;
}

TEST(GrpoLoop, PickerModelAnswersBothWays) {
  const GgufFile f = read_gguf(picker_model());
  const Tokenizer tok = Tokenizer::from_gguf(f);
  EXPECT_EQ(tok.encode(testing::kShortPath, false, false).size(), size_t(kShortTokens));
  EXPECT_EQ(tok.encode(testing::kLongPath, false, false).size(), size_t(kLongTokens));
}

// One update on the loop's own rollouts: every completion with a positive advantage gains
// log-probability, every one with a negative advantage loses it.
TEST(GrpoLoop, AdvantagesMoveLogProbabilities) {
  const GgufFile f = read_gguf(picker_model());
  TrainModel policy = import_gguf(f);
  const auto engine = inference_model(policy, Tokenizer::from_gguf(f));
  GrpoOptions o = picker_run("advantage");
  o.num_generations = 8;
  const std::vector<TaskItem> items(2, TaskItem{.prompt = kPickPrompt, .answer = "a"});
  std::vector<Rollout> batch = generate_rollouts(*engine, items, o, rollout_seed(o.seed, 0, 0));
  score_rollouts(batch, items, parse_reward_spec(o.rewards));
  set_advantages(batch, o);
  int positive = 0, negative = 0;
  std::vector<double> before;
  for (const Rollout& r : batch) {
    positive += r.advantage > 0, negative += r.advantage < 0;
    before.push_back(sequence_logp(policy, r, o.temperature));
  }
  ASSERT_GT(positive, 0);
  ASSERT_GT(negative, 0);
  AdamWState adam;
  UpdateScratch s;
  update_policy(policy, nullptr, batch, o, adam, 1e-3f, s);
  for (size_t i = 0; i < batch.size(); ++i) {
    const double after = sequence_logp(policy, batch[i], o.temperature);
    if (batch[i].advantage > 0) {
      EXPECT_GT(after, before[i]) << "completion " << i << ": " << batch[i].text;
    } else if (batch[i].advantage < 0) {
      EXPECT_LT(after, before[i]) << "completion " << i << ": " << batch[i].text;
    }
  }
}

// The loop learns (the rewarded short answer becomes more frequent), writes a metrics line per
// step, and calls the Evaluator every eval_every steps and at the end.
TEST(GrpoLoop, LearnsAndCallsTheEvaluator) {
  GrpoOptions o = picker_run("learn");
  o.steps = 6;
  o.eval_every = 3;
  int calls = 0;
  const Evaluator evaluate = [&](const Model&, const ItemFormat&) {
    ++calls;
    return HeldOutScore{.accuracy = 0.25 * calls, .format_rate = 1, .mean_tokens = 10};
  };
  const GrpoResult r = run_grpo(o, evaluate);
  ASSERT_EQ(r.steps.size(), 6u);
  EXPECT_EQ(calls, 2);
  EXPECT_EQ(r.eval_accuracy, 0.5);
  const auto m = step_metrics(o.out_dir);
  ASSERT_EQ(m.size(), 6u);
  for (const char* key : {"reward_mean", "accuracy", "format_rate", "completion_length", "loss", "kl", "clip_fraction",
                          "grad_norm", "rollout_seconds", "train_seconds", "groups_used", "groups_generated", "skipped"})
    EXPECT_TRUE(m[0].contains(key)) << key;
  const double early = m[0]["accuracy"].get<double>() + m[1]["accuracy"].get<double>();
  const double late = m[4]["accuracy"].get<double>() + m[5]["accuracy"].get<double>();
  EXPECT_GT(late, early) << "the rewarded answer becomes more frequent";
  EXPECT_TRUE(fs::exists(o.out_dir + "/model.gguf"));
}

// mu = 1: the old log-probs are the current ones (ratio exactly 1, nothing clipped), one AdamW
// step per generation batch. mu = 2: two steps, and the second sees ratios away from 1.
TEST(GrpoLoop, NumIterations) {
  GrpoOptions one = picker_run("mu1");
  one.steps = 2;
  one.epsilon = one.epsilon_high = 0.01f;
  one.adamw.lr = 5e-3f;
  GrpoOptions two = one;
  two.num_iterations = 2;
  two.out_dir = fresh_dir("mu2");
  run_grpo(one);
  run_grpo(two);
  EXPECT_EQ(read_checkpoint(one.out_dir + "/checkpoint.bin").adam.step, 2);
  EXPECT_EQ(read_checkpoint(two.out_dir + "/checkpoint.bin").adam.step, 4);
  double clipped_one = 0, clipped_two = 0;
  for (const auto& j : step_metrics(one.out_dir)) clipped_one += j["clip_fraction"].get<double>();
  for (const auto& j : step_metrics(two.out_dir)) clipped_two += j["clip_fraction"].get<double>();
  EXPECT_EQ(clipped_one, 0.0);
  EXPECT_GT(clipped_two, 0.0);
}

// beta > 0: at step 1 the policy is the reference, so the KL and its gradient are exactly 0 and
// the update equals beta = 0's; from step 2 on the KL is positive and changes the update.
TEST(GrpoLoop, BetaAddsTheKlToTheReference) {
  GrpoOptions plain = picker_run("beta0");
  plain.steps = 2;
  plain.save_every = 1;
  plain.stop_after = 1;
  GrpoOptions kl = plain;
  kl.beta = 0.5f;
  kl.out_dir = fresh_dir("beta");
  run_grpo(plain);
  run_grpo(kl);
  EXPECT_EQ(read_checkpoint(plain.out_dir + "/checkpoint.bin").params, read_checkpoint(kl.out_dir + "/checkpoint.bin").params)
      << "step 1: the KL gradient is 0 at the reference";
  plain.stop_after = kl.stop_after = 0;
  plain.resume = kl.resume = true;
  run_grpo(plain);
  run_grpo(kl);
  const auto mp = step_metrics(plain.out_dir), mk = step_metrics(kl.out_dir);
  ASSERT_EQ(mk.size(), 2u);
  EXPECT_EQ(mk[0]["kl"].get<double>(), 0.0);
  EXPECT_GT(mk[1]["kl"].get<double>(), 0.0);
  EXPECT_EQ(mp[1]["kl"].get<double>(), 0.0) << "beta 0: no KL computed";
  EXPECT_NE(params_of(plain.out_dir + "/model.gguf"), params_of(kl.out_dir + "/model.gguf"));
}

// A completion limit of exactly the short answer's length: every completion stops at the limit
// (truncated), the short ones with a complete, rewarded answer. Masked, nothing is learned.
TEST(GrpoLoop, MaskTruncatedCompletions) {
  GrpoOptions masked = picker_run("mask");
  masked.steps = 2;
  masked.max_completion_length = kShortTokens;
  masked.mask_truncated_completions = true;
  GrpoOptions unmasked = masked;
  unmasked.mask_truncated_completions = false;
  unmasked.out_dir = fresh_dir("nomask");
  run_grpo(masked);
  run_grpo(unmasked);
  const auto start = params_of(picker_model());
  EXPECT_EQ(params_of(masked.out_dir + "/model.gguf"), start) << "every completion masked: no update";
  EXPECT_NE(params_of(unmasked.out_dir + "/model.gguf"), start);
  for (const auto& j : step_metrics(masked.out_dir)) {
    EXPECT_GT(j["reward_std"].get<double>(), 0.0) << "the rewards differ, so only the mask stops the update";
    EXPECT_EQ(j["grad_norm"].get<double>(), 0.0);
    EXPECT_EQ(j["loss"].get<double>(), 0.0);
  }
}

// Dynamic sampling: more generation batches until the step holds prompts_per_step groups with
// unequal rewards; without it, every group of the one batch is used.
TEST(GrpoLoop, DynamicSamplingFillsTheStep) {
  GrpoOptions plain = picker_run("nodyn");
  plain.num_generations = 2;  // a group of two equal answers is frequent
  plain.steps = 4;
  plain.adamw.lr = 1e-6f;     // the policy stays mixed: this is about sampling, not learning
  GrpoOptions dyn = plain;
  dyn.dynamic_sampling = true;
  dyn.max_num_gen_batches = 8;
  dyn.out_dir = fresh_dir("dyn");
  run_grpo(plain);
  run_grpo(dyn);
  for (const auto& j : step_metrics(plain.out_dir)) {
    EXPECT_EQ(j["groups_generated"], 2);
    EXPECT_EQ(j["groups_used"], 2);
  }
  int extra = 0;
  for (const auto& j : step_metrics(dyn.out_dir)) {
    EXPECT_EQ(j["groups_used"], 2);
    EXPECT_FALSE(j["skipped"].get<bool>());
    EXPECT_EQ(j["groups_generated"].get<int>() % 2, 0) << "whole generation batches";
    extra += j["groups_generated"].get<int>() > 2;
  }
  EXPECT_GT(extra, 0) << "some step needed another generation batch";
}

// No group with unequal rewards within the cap: the update is skipped and says so.
TEST(GrpoLoop, DynamicSamplingSkipsAStepWithoutSignal) {
  GrpoOptions o = picker_run("skip");
  o.steps = 2;
  o.rewards = "format:1";
  o.max_completion_length = kShortTokens - 1;  // no answer is complete: every reward is 0
  o.dynamic_sampling = true;
  o.max_num_gen_batches = 3;
  const GrpoResult r = run_grpo(o);
  for (const GrpoStepStats& s : r.steps) {
    EXPECT_TRUE(s.skipped);
    EXPECT_EQ(s.groups_generated, 6);
    EXPECT_EQ(s.groups_used, 0);
  }
  for (const auto& j : step_metrics(o.out_dir)) EXPECT_TRUE(j["skipped"].get<bool>());
  EXPECT_EQ(params_of(o.out_dir + "/model.gguf"), params_of(picker_model()));
  EXPECT_EQ(read_checkpoint(o.out_dir + "/checkpoint.bin").adam.step, 0) << "no optimizer step";
}

// Killed after step 3 (last checkpoint at step 2) and resumed: the same model bytes and metrics
// as a run that was never interrupted, every step once. Dynamic sampling and alternating answers
// make the result depend on where the prompt stream was.
TEST(GrpoLoop, ResumeReproducesAnUninterruptedRun) {
  GrpoOptions whole = picker_run("whole");
  whole.data_path = picker_rl_data("grpo_alternating", 5, true);
  whole.steps = 5;
  whole.save_every = 2;
  whole.num_generations = 2;
  whole.dynamic_sampling = true;
  whole.beta = 0.1f;
  GrpoOptions part = whole;
  part.out_dir = fresh_dir("part");
  run_grpo(whole);
  part.stop_after = 3;
  run_grpo(part);
  EXPECT_EQ(read_checkpoint(part.out_dir + "/checkpoint.bin").step, 2);
  part.stop_after = 0;
  part.resume = true;
  part.quiet = false;
  ::testing::internal::CaptureStderr();
  const GrpoResult r = run_grpo(part);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("resuming from step 2"), std::string::npos) << err;
  EXPECT_EQ(r.resumed_from, 2);
  ASSERT_EQ(r.steps.size(), 3u);
  EXPECT_EQ(r.steps.front().step, 3);
  EXPECT_EQ(bytes_of(whole.out_dir + "/model.gguf"), bytes_of(part.out_dir + "/model.gguf"));
  auto a = step_metrics(whole.out_dir), b = step_metrics(part.out_dir);
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) {
    for (auto* j : {&a[i], &b[i]})
      for (const char* timing : {"rollout_seconds", "train_seconds", "rollout_tokens_per_s"}) j->erase(timing);
    EXPECT_EQ(a[i], b[i]) << "step " << i + 1;
    EXPECT_EQ(b[i]["step"], int(i) + 1);
  }
}

// LoRA: the adapters learn the rewarded answer with the base frozen (the KL reference is the base
// without them), rollouts run the base with the adapters attached (their log-probs are the
// training pass's), and a resumed run writes the same merged model and adapter as the
// uninterrupted one.
TEST(GrpoLoop, LoraLearnsAndResumesExactly) {
  GrpoOptions whole = picker_run("lora_whole");
  whole.steps = 6;
  whole.save_every = 2;
  whole.beta = 0.05f;
  whole.lora = {.rank = 4, .alpha = 8.0f};
  whole.adamw.lr = 2e-3f;
  const GrpoResult r = run_grpo(whole);
  const auto m = step_metrics(whole.out_dir);
  ASSERT_EQ(m.size(), 6u);
  for (const auto& step : m)
    std::printf("LoRA GRPO step %d: accuracy %.3f, kl %.4f\n", step["step"].get<int>(), step["accuracy"].get<double>(),
                step["kl"].get<double>());
  const double early = m[0]["accuracy"].get<double>() + m[1]["accuracy"].get<double>();
  const double late = m[4]["accuracy"].get<double>() + m[5]["accuracy"].get<double>();
  EXPECT_GT(late, early) << "the rewarded answer becomes more frequent";
  for (const auto& step : m) EXPECT_LT(step["rollout_vs_train_logp"].get<double>(), 1e-3);
  EXPECT_GT(m[5]["kl"].get<double>(), 0.0) << "the adapted policy moved away from the base";
  ASSERT_EQ(r.lora_path, whole.out_dir + "/lora.gguf");
  EXPECT_EQ(read_checkpoint(whole.out_dir + "/checkpoint.bin").params.size(),
            LoraAdapters(import_gguf(read_gguf(whole.model)).config, whole.lora).layout.total);
  EXPECT_NE(params_of(whole.out_dir + "/model.gguf"), params_of(whole.model));
  expect_resume_writes_the_same(whole, "lora_part");
}

// LoRA on a Q8_0 copy of the policy: the base stays Q8_0 (the training pass reads it dequantized,
// rollouts run it as stored, with llama.cpp's numerics: activations rounded to Q8_0), the adapters
// still learn the rewarded answer, and a resumed run is the uninterrupted one.
TEST(GrpoLoop, LoraOnAQuantizedBaseLearnsAndResumesExactly) {
  GrpoOptions whole = picker_run("lora_q8_whole");
  const std::string q8 = temp_path("grpo_picker_q8.gguf");
  const GgufFile f = read_gguf(whole.model);
  export_gguf(import_gguf(f), tokenizer_metadata(f), q8, GgmlType::Q8_0);
  whole.model = q8;
  whole.steps = 6;
  whole.save_every = 2;
  whole.lora = {.rank = 4, .alpha = 8.0f};
  whole.adamw.lr = 2e-3f;
  run_grpo(whole);
  const auto m = step_metrics(whole.out_dir);
  ASSERT_EQ(m.size(), 6u);
  double gap = 0;
  for (const auto& step : m) gap = std::max(gap, step["rollout_vs_train_logp"].get<double>());
  std::printf("LoRA GRPO on a Q8_0 base: accuracy %.3f -> %.3f; rollout vs training log-probs within %.2e\n",
              m[0]["accuracy"].get<double>(), m[5]["accuracy"].get<double>(), gap);
  EXPECT_GT(m[4]["accuracy"].get<double>() + m[5]["accuracy"].get<double>(),
            m[0]["accuracy"].get<double>() + m[1]["accuracy"].get<double>());
  EXPECT_GT(gap, 0.0) << "Q8_0 rollouts round the activations; the training pass does not";
  EXPECT_LT(gap, 0.1);
  expect_resume_writes_the_same(whole, "lora_q8_part");
}

TEST(GrpoLoop, ResumeErrors) {
  GrpoOptions o = picker_run("resume_errors");
  o.resume = true;
  try {
    run_grpo(o);
    FAIL() << "--resume without a checkpoint started afresh";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("--resume: no checkpoint"), std::string::npos) << e.what();
  }
  o.resume = false;
  o.steps = 1;
  run_grpo(o);
  o.resume = true;
  o.adamw.lr = 1e-2f;
  o.top_k = 5;
  o.num_generations = 3;
  try {
    run_grpo(o);
    FAIL() << "resumed with other options";
  } catch (const FormatError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("lr: 0.0005 in the checkpoint, 0.01 now"), std::string::npos) << m;
    EXPECT_NE(m.find("top_k: 0 in the checkpoint, 5 now"), std::string::npos) << m;
    EXPECT_NE(m.find("num_generations: 4 in the checkpoint, 3 now"), std::string::npos) << "the flag's name: " << m;
    EXPECT_EQ(m.find("max_completion_length"), std::string::npos) << "names only what differs: " << m;
  }
}

TEST(GrpoOptions, SamplingOptionsAreChecked) {
  GrpoOptions base;  // validate() reads no file
  base.task.name = "arith";
  base.model = "unused.gguf";
  ::ponder::testing::expect_option_errors<GrpoOptions>(base, {
      {[](GrpoOptions& o) { o.top_p = 1.5f; }, "--top-p", "(0, 1]", "got 1.5"},
      {[](GrpoOptions& o) { o.top_p = 0.0f; }, "--top-p", "(0, 1]", "got 0"},
      {[](GrpoOptions& o) { o.top_k = -3; }, "--top-k", ">= 0", "got -3"},
      {[](GrpoOptions& o) { o.num_generations = 100000; }, "--num-generations", "[2, 1024]", "got 100000"},
      {[](GrpoOptions& o) { o.num_generations = 1; }, "--num-generations", "[2, 1024]", "got 1"},
      {[](GrpoOptions& o) { o.prompts_per_step = 0; }, "--prompts-per-step", "[1, 4096]", "got 0"},
      {[](GrpoOptions& o) { o.temperature = 0.0f; }, "--temperature", "> 0", "got 0"},
      {[](GrpoOptions& o) { o.num_iterations = 0; }, "--num-iterations", "[1, 64]", "got 0"},
      {[](GrpoOptions& o) { o.max_num_gen_batches = 0; }, "--max-num-gen-batches", ">= 1", "got 0"},
      {[](GrpoOptions& o) { o.epsilon = 1.0f; }, "--epsilon", "[0, 1)", "got 1"},
  });
}

}  // namespace
}  // namespace ponder
