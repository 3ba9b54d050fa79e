// The sampled strategies on real models (reproducibility, batch invariance, KV sharing, the R1
// chat format) and on scripted models (stop strings, thinking budget, best-of, voting).
#include <cmath>
#include <gtest/gtest.h>
#include <map>

#include "core/error.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "formats/chat_template.h"
#include "support/scripted_model.h"
#include "support/shared_data.h"

namespace ponder {
namespace {

using ::ponder::testing::ScriptedModel;
using ::ponder::testing::read_json;
using ::ponder::testing::shared_path;

const Model& model(const std::string& file) {
  static std::map<std::string, std::unique_ptr<Model>> cache;
  auto& m = cache[file];
  if (!m) m = load_model(shared_path("models/" + file));
  return *m;
}

SamplingOptions warm() { return {.temperature = 0.9f, .top_k = 40, .top_p = 0.95f}; }

class RealModels : public ::testing::TestWithParam<const char*> {};

TEST_P(RealModels, SameSeedSamePathsTwice) {
  PONDER_REQUIRE_SHARED(std::string("models/") + GetParam());
  const Model& m = model(GetParam());
  const auto prompt = m.tokenizer.encode("Once upon a time", true, false);
  ModelRunner runner(m, kv_positions_for(int64_t(prompt.size()), 1, 4, 24));
  const GenerateRequest req{.prompt = prompt, .strategy = SampleOptions{.n = 4, .sampling = warm(), .seed = 42},
                            .stop = {.max_tokens = 24}};
  const auto a = generate(runner, req), b = generate(runner, req);
  ASSERT_EQ(a.paths.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(a.paths[i].tokens, b.paths[i].tokens);
    EXPECT_EQ(a.paths[i].logprobs, b.paths[i].logprobs);
  }
  auto other = req;
  std::get<SampleOptions>(other.strategy).seed = 43;
  const auto c = generate(runner, other);
  bool differs = false;
  for (size_t i = 0; i < 4; ++i) differs = differs || c.paths[i].tokens != a.paths[i].tokens;
  EXPECT_TRUE(differs) << "another seed, other paths";
}

// Batch invariance end to end: the 8 paths of one request (8 sequences per step) equal 8 runs of
// one path each with the same per-path seeds, bitwise (tokens and log-probs).
TEST_P(RealModels, EightPathsEqualEightSeparateRuns) {
  PONDER_REQUIRE_SHARED(std::string("models/") + GetParam());
  const Model& m = model(GetParam());
  const auto prompt = m.tokenizer.encode("The little dog", true, false);
  ModelRunner runner(m, kv_positions_for(int64_t(prompt.size()), 1, 8, 20));
  const auto all = generate(runner, {.prompt = prompt, .strategy = SampleOptions{.n = 8, .sampling = warm(), .seed = 7},
                                     .stop = {.max_tokens = 20}});
  ASSERT_EQ(all.paths.size(), 8u);
  for (const Path& p : all.paths) {
    const auto one = generate(runner, {.prompt = prompt,
                                       .strategy = SampleOptions{.n = 1, .sampling = warm(), .seed = 7, .path_offset = uint64_t(p.index)},
                                       .stop = {.max_tokens = 20}});
    EXPECT_EQ(one.paths[0].tokens, p.tokens) << "path " << p.index;
    EXPECT_EQ(one.paths[0].logprobs, p.logprobs) << "path " << p.index;
  }
}

TEST_P(RealModels, GreedyInABatchOfEightEqualsGreedyAlone) {
  PONDER_REQUIRE_SHARED(std::string("models/") + GetParam());
  const Model& m = model(GetParam());
  const auto prompt = m.tokenizer.encode("Lily and Ben", true, false);
  ModelRunner runner(m, kv_positions_for(int64_t(prompt.size()), 1, 8, 30));
  const auto alone = generate(runner, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 30}});
  const auto batch = generate(runner, {.prompt = prompt, .strategy = SampleOptions{.n = 8, .sampling = {.temperature = 0}},
                                       .stop = {.max_tokens = 30}});
  for (const Path& p : batch.paths) {
    EXPECT_EQ(p.tokens, alone.paths[0].tokens);
    EXPECT_EQ(p.logprobs, alone.paths[0].logprobs);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, RealModels, ::testing::Values("stories260K.gguf", "tiny-qwen2-random.gguf"),
                         [](const auto& info) { return std::string(info.param).substr(0, 6) == "storie" ? "stories260K" : "tiny_qwen2"; });

// n = 16 paths on a 300-token prompt hold the prompt's blocks once plus each path's own blocks.
TEST(KvSharing, SixteenPathsShareThePromptBlocks) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  std::vector<int32_t> prompt = {1};
  while (prompt.size() < 300) prompt.push_back(int32_t(259 + prompt.size() % 200));
  const int bs = ModelRunner::kBlockSize, gen = 32, n = 16;
  ModelRunner runner(m, kv_positions_for(300, 1, n, gen));
  generate(runner, {.prompt = prompt, .strategy = SampleOptions{.n = n, .sampling = warm(), .seed = 1},
                    .stop = {.max_tokens = gen}});
  const int prompt_blocks = (300 + bs - 1) / bs;  // 19, the last one partly filled (12 of 16)
  // Each path copies the partly filled block once (copy-on-write) and needs ceil((32 - 4) / 16) = 2 more.
  const int per_path = 1 + (gen - (bs - 300 % bs) + bs - 1) / bs;
  std::printf("KV blocks: peak %d; prompt %d + %d paths x %d = %d; unshared would be %d x %d = %d\n",
              runner.peak_blocks_used(), prompt_blocks, n, per_path, prompt_blocks + n * per_path, n,
              prompt_blocks + per_path - 1, n * (prompt_blocks + per_path - 1));
  EXPECT_LE(runner.peak_blocks_used(), prompt_blocks + n * per_path);
  EXPECT_GE(runner.peak_blocks_used(), prompt_blocks + n * (per_path - 1));
  EXPECT_EQ(runner.pool().n_used(), 0) << "every block returned";
}

TEST(KvSharing, RunningOutOfBlocksIsAClearError) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const Model& m = model("stories260K.gguf");
  const std::vector<int32_t> prompt(40, 300);
  ModelRunner runner(m, 64);  // 4 blocks: the prompt fits, 8 paths of 40 tokens do not
  EXPECT_THROW(generate(runner, {.prompt = prompt, .strategy = SampleOptions{.n = 8, .sampling = warm()}, .stop = {.max_tokens = 40}}),
               ResourceError);
  EXPECT_EQ(runner.pool().n_used(), 0) << "a failed request returns its blocks";
}

// The R1 chat format end to end: the rendered conversation gives llama.cpp's prompt ids, and
// greedy decoding gives its tokens.
TEST(R1Chat, RenderedPromptAndGreedyMatchLlamaCpp) {
  PONDER_REQUIRE_SHARED("refdata/tiny_r1distill_llamacpp.json");
  const auto ref = read_json(shared_path("refdata/tiny_r1distill_llamacpp.json"));
  const Model& m = model("tiny-r1distill-random.gguf");
  ASSERT_EQ(detect_chat_format(m.file), ChatFormat::R1Distill);
  const std::vector<ChatMessage> conv = {
      {"user", "What is 17*23? Please reason step by step, and put your final answer within \\boxed{}."}};
  const auto& cs = ref["cases"][0];
  ASSERT_EQ(cs["name"], "r1_chat_math");
  const auto prompt = m.tokenizer.encode(render_chat(ChatFormat::R1Distill, conv, true), true, true);
  EXPECT_EQ(prompt, cs["prompt_tokens"].get<std::vector<int32_t>>());
  ModelRunner runner(m, 128);
  const auto r = generate(runner, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 32}});
  EXPECT_EQ(r.paths[0].tokens, cs["greedy"]["tokens"].get<std::vector<int32_t>>());
}

// A scripted model that spells "abab..." and then EOS after `n` tokens; token 3 is "</think>".
ScriptedModel spelling_model(int n) {
  return ScriptedModel({"<eos>", "a", "b", "</think>", "\n", " 42"}, [n](const std::vector<int32_t>& toks) {
    std::vector<double> p(6, 0.0);
    const int len = int(toks.size());
    if (len >= n) p[0] = 1;
    else p[toks.back() == 1 ? 2 : 1] = 1;
    return p;
  });
}

TEST(StopStrings, CutTheTextBeforeTheMatch) {
  ScriptedModel m = spelling_model(100);
  const auto r = generate(m, {.prompt = {2}, .strategy = GreedyOptions{}, .stop = {.max_tokens = 20, .stop = {"bab"}}});
  EXPECT_EQ(r.paths[0].text, "a");  // "a" "b" "a" "b": "abab" contains "bab" at 1
  EXPECT_EQ(r.paths[0].finish, FinishReason::Stop);
  EXPECT_EQ(r.paths[0].tokens.size(), 4u);
  EXPECT_EQ(r.tokens_generated, 4);
  const auto eos = generate(m, {.prompt = {2}, .strategy = GreedyOptions{}, .stop = {.max_tokens = 20}});
  EXPECT_EQ(eos.paths[0].finish, FinishReason::Length);
  ScriptedModel short_model = spelling_model(5);
  const auto e = generate(short_model, {.prompt = {2}, .strategy = GreedyOptions{}, .stop = {.max_tokens = 20}});
  EXPECT_EQ(e.paths[0].finish, FinishReason::Eos);
  EXPECT_EQ(e.paths[0].tokens.back(), 0) << "the EOS token is part of the path";
  EXPECT_EQ(e.paths[0].text, "abab") << "but not of its text";
}

TEST(ThinkBudget, ForcesTheEndOfReasoning) {
  ScriptedModel m = spelling_model(100);
  const auto r = generate(m, {.prompt = {2}, .strategy = GreedyOptions{}, .stop = {.max_tokens = 10, .think_budget = 3}});
  // 3 reasoning tokens "aba", then "\n</think>\n\n" forced (tokens "\n" "</think>" "\n" "\n"),
  // then the model again ("a" after anything but "a"): 10 tokens in all.
  EXPECT_EQ(r.paths[0].text, "aba\n</think>\n\naba");
  EXPECT_EQ(r.paths[0].tokens, (std::vector<int32_t>{1, 2, 1, 4, 3, 4, 4, 1, 2, 1}));
  EXPECT_EQ(r.paths[0].reasoning, "aba");
  EXPECT_EQ(r.paths[0].answer, "aba") << "the answer continues after the forced tag";
}

// A budget of 0: no reasoning token at all, "</think>" is forced before the first choice.
TEST(ThinkBudget, ZeroForcesTheEndBeforeAnyReasoning) {
  ScriptedModel m = spelling_model(100);
  for (const Strategy& s : {Strategy{GreedyOptions{}}, Strategy{SampleOptions{.n = 2, .seed = 1}}}) {
    const auto r = generate(m, {.prompt = {2}, .strategy = s, .stop = {.max_tokens = 6, .think_budget = 0}});
    for (const Path& p : r.paths) {
      EXPECT_EQ(p.tokens, (std::vector<int32_t>{4, 3, 4, 4, 1, 2})) << strategy_name(s);
      EXPECT_EQ(p.text, "\n</think>\n\nab");
      EXPECT_EQ(p.reasoning, "");
      EXPECT_EQ(p.answer, "ab");
    }
  }
}

TEST(ThinkBudget, ForcesTheR1ThinkTokenOnTheR1Vocabulary) {
  PONDER_REQUIRE_SHARED("models/tiny-r1distill-random.gguf");
  const Model& m = model("tiny-r1distill-random.gguf");
  const int32_t think_end = m.tokenizer.find_token("</think>");
  ASSERT_EQ(think_end, 151649);
  const auto prompt = m.tokenizer.encode(render_chat(ChatFormat::R1Distill, {{{"user", "Hi"}}}, true), true, true);
  ModelRunner runner(m, 128);
  const auto r = generate(runner, {.prompt = prompt, .strategy = GreedyOptions{}, .stop = {.max_tokens = 12, .think_budget = 4}});
  const auto& t = r.paths[0].tokens;
  ASSERT_GE(t.size(), 6u);
  EXPECT_EQ(t[5], think_end) << "4 reasoning tokens, the forced newline, then </think>";
}

// Answers per path index for the voting tests: the path's first token chooses its answer.
ScriptedModel answer_model() {
  return ScriptedModel({"<eos>", " 42", " 7", " x"}, [](const std::vector<int32_t>& toks) {
    if (toks.size() > 1) return std::vector<double>{1, 0, 0, 0};
    return std::vector<double>{0, 0.5, 0.3, 0.2};
  });
}

TEST(Vote, MajorityAndWeightedWinners) {
  ScriptedModel m = answer_model();
  const auto r = generate(m, {.prompt = {3}, .strategy = VoteOptions{.n_samples = 64, .sampling = {.temperature = 1}, .seed = 3},
                              .stop = {.max_tokens = 4}});
  ASSERT_EQ(r.paths.size(), 64u);
  int n42 = 0, n7 = 0, none = 0;
  for (const Path& p : r.paths) {
    if (p.extracted_answer == "42") ++n42;
    else if (p.extracted_answer == "7") ++n7;
    else ++none;
  }
  ASSERT_FALSE(r.votes.empty());
  EXPECT_EQ(r.winner, n42 >= n7 ? "42" : "7");
  EXPECT_EQ(r.votes[0].count, std::max(n42, n7));
  EXPECT_EQ(n42 + n7 + none, 64);
  EXPECT_EQ(r.paths[0].extracted_answer, r.winner) << "the winner's paths first";
  // Weighted: each path weighs exp(mean log-prob): 42 paths weigh sqrt(0.5), 7 paths sqrt(0.3).
  for (const VoteEntry& v : r.votes) {
    const double w = v.answer == "42" ? std::sqrt(0.5) : std::sqrt(0.3);
    EXPECT_NEAR(v.weight, v.count * w, 1e-5) << v.answer;
  }
}

// Weighted voting against the majority: " 42" (p 0.6) is followed by three fillers of p 1/8
// each (mean log-prob (ln .6 + 3 ln(1/8)) / 4, weight 0.185), " 7" (p 0.4) by EOS (p 1; weight
// sqrt(.4) = 0.632). 42 gets most votes, but 7 the larger summed weight unless 42 has more than
// 3.4 times as many votes.
TEST(Vote, WeightedCanOverruleTheMajority) {
  std::vector<std::string> texts = {"<eos>", " 42", " 7"};
  for (char c = 'a'; c < 'i'; ++c) texts.push_back(std::string(" ") + c);
  ScriptedModel m(texts, [](const std::vector<int32_t>& toks) {
    std::vector<double> p(11, 0.0);
    if (toks.size() == 1) p[1] = 0.6, p[2] = 0.4;
    else if (toks[1] == 2) p[0] = 1;
    else std::fill(p.begin() + 3, p.end(), 1.0 / 8);
    return p;
  });
  const double w42 = std::exp((std::log(0.6) + 3 * std::log(1.0 / 8)) / 4), w7 = std::exp(std::log(0.4) / 2);
  auto run = [&](bool weighted) {
    return generate(m, {.prompt = {3},
                        .strategy = VoteOptions{.n_samples = 64, .weighted = weighted, .sampling = {.temperature = 1}, .seed = 11},
                        .stop = {.max_tokens = 4}});
  };
  const GenerateResult majority = run(false), weighted = run(true);
  int n42 = 0, n7 = 0;
  for (const Path& p : weighted.paths) (p.extracted_answer == "42" ? n42 : n7) += 1;
  ASSERT_EQ(n42 + n7, 64);
  ASSERT_GT(n42, n7) << "seed 11 draws 42 most often";
  ASSERT_LT(n42 * w42, n7 * w7) << "and 7 the larger weight";
  EXPECT_EQ(majority.winner, "42");
  EXPECT_EQ(weighted.winner, "7");
  ASSERT_EQ(weighted.votes.size(), 2u);
  EXPECT_EQ(weighted.votes[0].answer, "7");
  EXPECT_EQ(weighted.votes[0].count, n7);
  EXPECT_NEAR(weighted.votes[0].weight, n7 * w7, 1e-5);
  EXPECT_NEAR(weighted.votes[1].weight, n42 * w42, 1e-5);
  EXPECT_EQ(weighted.paths[0].extracted_answer, "7") << "the winner's paths first";
  EXPECT_EQ(weighted.tokens_generated, 4 * n42 + 2 * n7);
}

// --answer-only: x and y (p .5 each) start the reasoning; min_p 0.9 leaves one choice after that.
//   x </think> A EOS  log-probs ln .5, ln .6, ln .95, 0: mean -0.314, answer mean ln(.95) / 2
//   y </think> B EOS  log-probs ln .5, 0, ln .6, 0:      mean -0.301, answer mean ln(.6) / 2
// Over the whole path y ranks first; over the answer after "</think>" x does.
TEST(BestOf, AnswerOnlyScoresTheTokensAfterThink) {
  const std::map<std::string, std::vector<double>> next = {
      {"", {0, .5, .5, 0, 0, 0}},          {"x", {0, 0, 0, .6, .2, .2}}, {"y", {0, 0, 0, 1, 0, 0}},
      {"x</think>", {0, 0, 0, 0, .95, .05}}, {"y</think>", {.2, 0, 0, 0, .2, .6}}};
  const std::vector<std::string> texts = {"<eos>", "x", "y", "</think>", " A", " B"};
  ScriptedModel m(texts, [&](const std::vector<int32_t>& toks) {
    std::string key;
    for (size_t i = 1; i < toks.size(); ++i) key += texts[size_t(toks[i])];
    const auto it = next.find(key);
    return it != next.end() ? it->second : std::vector<double>{1, 0, 0, 0, 0, 0};
  });
  auto run = [&](bool answer_only, int n_return) {
    return generate(m, {.prompt = {1},
                        .strategy = BestOfOptions{.n_samples = 16, .n_return = n_return, .score_answer_only = answer_only,
                                                  .sampling = {.temperature = 1, .min_p = 0.9f}, .seed = 4},
                        .stop = {.max_tokens = 8}});
  };
  const GenerateResult whole = run(false, 16), answer = run(true, 16);
  ASSERT_EQ(whole.paths.size(), 16u);
  EXPECT_EQ(whole.paths.front().text, "y</think> B");
  EXPECT_EQ(whole.paths.back().text, "x</think> A");
  EXPECT_NEAR(whole.paths.front().score, (std::log(.5) + std::log(.6)) / 4, 1e-6);
  EXPECT_NEAR(whole.paths.back().score, (std::log(.5) + std::log(.6) + std::log(.95)) / 4, 1e-6);
  EXPECT_EQ(answer.paths.front().text, "x</think> A");
  EXPECT_EQ(answer.paths.back().text, "y</think> B");
  EXPECT_NEAR(answer.paths.front().score, std::log(.95) / 2, 1e-6);
  EXPECT_NEAR(answer.paths.back().score, std::log(.6) / 2, 1e-6);
  const GenerateResult one = run(true, 1);
  ASSERT_EQ(one.paths.size(), 1u);
  EXPECT_EQ(one.tokens_generated, 16 * 4) << "every sampled path counts, returned or not";
}

TEST(BestOf, ReturnsTheBestByMeanLogprob) {
  ScriptedModel m = answer_model();
  const auto r = generate(m, {.prompt = {3}, .strategy = BestOfOptions{.n_samples = 16, .n_return = 2, .sampling = {.temperature = 1}, .seed = 5},
                              .stop = {.max_tokens = 4}});
  ASSERT_EQ(r.paths.size(), 2u);
  // Sixteen draws of the first token (p = .5, .3, .2) almost surely include " 42" twice; its
  // paths have mean log-prob log(0.5) / 2, the best possible.
  EXPECT_NEAR(r.paths[0].score, std::log(0.5) / 2, 1e-6);
  EXPECT_GE(r.paths[0].score, r.paths[1].score);
}

}  // namespace
}  // namespace ponder
