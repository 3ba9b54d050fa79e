// Tree search on scripted models (a hand-built tree of step probabilities and rewards) and on a
// real model's paged KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "core/error.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "support/scripted_model.h"
#include "support/shared_data.h"
#include "tasks/reward.h"

namespace ponder {
namespace {

using ::ponder::testing::ScriptedModel;

// Tokens: 0 EOS, 1 "a", 2 "b", 3 "\n", 4 "X", 5 "Y", 6 "Z", 7 "Q" (the prompt).
// After the prompt the first step is "a\n" (0.6) or "b\n" (0.4); after "a\n" the answer is X (0.6)
// or Y (0.4), after "b\n" always Z; every answer is followed by EOS. Complete paths:
//   a\nX 0.36, a\nY 0.24, b\nZ 0.40.
// Only Y is rewarded. Greedy takes a then X; beam search returns the most probable path, b\nZ.
ScriptedModel answer_tree() {
  return ScriptedModel({"<eos>", "a", "b", "\n", "X", "Y", "Z", "Q"}, [](const std::vector<int32_t>& t) {
    std::vector<double> p(8, 0.0);
    const int32_t last = t.back();
    if (t.size() == 1) p[1] = 0.6, p[2] = 0.4;
    else if (last == 1 || last == 2) p[3] = 1.0;
    else if (last == 3 && t[t.size() - 2] == 1) p[4] = 0.6, p[5] = 0.4;
    else if (last == 3) p[6] = 1.0;
    else p[0] = 1.0;
    return p;
  });
}

const Verifier rewards_y = [](const std::string& text) { return text.find('Y') != std::string::npos ? 1.0 : 0.0; };

GenerateRequest tree_request(MctsOptions o) {
  return {.prompt = {7}, .strategy = o, .stop = {.max_tokens = 16}, .verifier = rewards_y};
}

TEST(Mcts, FindsTheRewardedAnswerThatGreedyAndBeamMiss) {
  ScriptedModel lm = answer_tree();
  const auto greedy = generate(lm, {.prompt = {7}, .strategy = GreedyOptions{}, .stop = {.max_tokens = 16}});
  EXPECT_EQ(greedy.paths.at(0).text, "a\nX");
  const auto beam = generate(lm, {.prompt = {7}, .strategy = BeamOptions{.num_beams = 4}, .stop = {.max_tokens = 16}});
  EXPECT_EQ(beam.paths.at(0).text, "b\nZ");
  const auto mcts = generate(lm, tree_request({.simulations = 8, .expand = 4, .budget_tokens = 200, .seed = 3}));
  EXPECT_EQ(mcts.paths.at(0).text, "a\nY");
  EXPECT_EQ(mcts.paths.at(0).finish, FinishReason::Eos);
  EXPECT_EQ(mcts.paths.at(0).tokens, (std::vector<int32_t>{1, 3, 5, 0}));
  EXPECT_NEAR(mcts.paths.at(0).cumulative_logprob, std::log(0.6) + std::log(0.4), 1e-5);
  EXPECT_EQ(mcts.paths.at(0).score, 1.0);
  EXPECT_EQ(lm.n_live(), 0) << "every sequence of the tree is released";
}

// Three simulations with greedy rollouts, worked by hand (c = c_puct, priors a 0.6, b 0.4):
//  1. expand the root: children a\n and b\n, rolled out greedily to a\nX and b\nZ, both value 0.
//     N(a) = N(b) = 1, N(root) = 2.
//  2. at the root: a: 0 + c*0.6*sqrt(2)/2 = 0.424c, b: 0 + c*0.4*sqrt(2)/2 = 0.283c: a. Expand a
//     into the finished steps X<eos> (prior 0.6, value 0) and Y<eos> (0.4, value 1).
//     N(a) = 3, W(a) = 1, N(root) = 4.
//  3. at the root: a: 1/3 + c*0.6*sqrt(4)/4 = 0.333 + 0.3c, b: 0 + c*0.4*sqrt(4)/2 = 0.4c.
//     c = 1: a (0.633 > 0.4); descend: X: 0 + 0.6*sqrt(3)/2 = 0.520, Y: 1 + 0.4*sqrt(3)/2 = 1.346:
//     Y is finished, its value 1 is backed up again. Visits a 4, b 1.
//     c = 4: b (1.6 > 1.533); expand b into Z<eos> (value 0). Visits a 3, b 2.
TEST(Mcts, VisitCountsAfterThreeSimulationsMatchPuctByHand) {
  for (const auto& [c_puct, visits_a, visits_b] : {std::tuple{1.0f, 4, 1}, std::tuple{4.0f, 3, 2}}) {
    ScriptedModel lm = answer_tree();
    const MctsOptions o{.simulations = 3, .expand = 8, .c_puct = c_puct, .rollout_temperature = 0, .budget_tokens = 500, .seed = 1};
    const auto r = generate(lm, tree_request(o));
    ASSERT_EQ(r.search.root_priors.size(), 2u) << "both first steps drawn in 8 draws";
    EXPECT_NEAR(r.search.root_priors[0], 0.6, 1e-6);
    EXPECT_NEAR(r.search.root_priors[1], 0.4, 1e-6);
    EXPECT_EQ(r.search.root_visits, (std::vector<int>{visits_a, visits_b})) << "c_puct " << c_puct;
    EXPECT_EQ(r.paths.at(0).text, "a\nY") << "c_puct " << c_puct;
  }
}

// A bushy scripted model: four word tokens, "\n" and EOS, each equally likely (EOS less so).
ScriptedModel bushy() {
  return ScriptedModel({"<eos>", "w", "x", "y", "z", "\n", "P"}, [](const std::vector<int32_t>&) {
    return std::vector<double>{0.05, 0.2, 0.2, 0.2, 0.15, 0.2, 0.0};
  });
}

TEST(Mcts, TheTokenBudgetIsNeverExceeded) {
  for (int64_t budget : {1, 2, 3, 7, 16, 40, 100, 333})
    for (uint64_t seed : {1, 2, 3}) {
      ScriptedModel lm = bushy();
      const Verifier longer = [](const std::string& t) { return double(t.size() % 5) / 4.0; };
      const auto r = generate(lm, {.prompt = {6}, .strategy = MctsOptions{.simulations = 4, .expand = 3, .budget_tokens = budget, .seed = seed},
                                   .stop = {.max_tokens = 30}, .verifier = longer});
      EXPECT_LE(r.tokens_generated, budget) << "budget " << budget << " seed " << seed;
      EXPECT_LE(int64_t(r.paths.at(0).tokens.size()), budget);
      EXPECT_EQ(lm.n_live(), 0);
      // A large enough budget is spent or the search ended in a finished root.
      if (budget >= 100) {
        EXPECT_GT(r.tokens_generated, 30);
      }
    }
}

TEST(Mcts, SameSeedSameSearch) {
  auto run = [](uint64_t seed) {
    ScriptedModel lm = bushy();
    return generate(lm, {.prompt = {6}, .strategy = MctsOptions{.simulations = 4, .expand = 3, .budget_tokens = 120, .seed = seed},
                         .stop = {.max_tokens = 20}});
  };
  const auto a = run(5), b = run(5);
  EXPECT_EQ(a.paths.at(0).tokens, b.paths.at(0).tokens);
  EXPECT_EQ(a.tokens_generated, b.tokens_generated);
  EXPECT_EQ(a.search.root_visits, b.search.root_visits);
  bool differs = false;
  for (uint64_t s = 6; s < 12 && !differs; ++s) differs = run(s).paths.at(0).tokens != a.paths.at(0).tokens;
  EXPECT_TRUE(differs) << "other seeds, other searches";
}

// Without a verifier a completion's value is the share of the other completions with its answer:
// the answer most rollouts reach (9, probability 0.45 against 0.275 for 7 and for 8) wins where
// greedy, taking the likelier first step, answers 7.
TEST(Mcts, WithoutAVerifierTheAgreedAnswerWins) {
  // After the prompt: "1\n" (0.55, then the answer 7 or 8 at 0.5 each) or "2\n" (0.45, then 9).
  ScriptedModel lm({"<eos>", "1", "2", "\n", "7", "8", "9", "Q"}, [](const std::vector<int32_t>& t) {
    std::vector<double> p(8, 0.0);
    const int32_t last = t.back();
    if (t.size() == 1) p[1] = 0.55, p[2] = 0.45;
    else if (last == 1 || last == 2) p[3] = 1.0;
    else if (last == 3 && t[t.size() - 2] == 1) p[4] = 0.5, p[5] = 0.5;
    else if (last == 3) p[6] = 1.0;
    else p[0] = 1.0;
    return p;
  });
  const auto r = generate(lm, {.prompt = {7}, .strategy = MctsOptions{.simulations = 12, .expand = 4, .budget_tokens = 400, .seed = 2},
                               .stop = {.max_tokens = 16}});
  const auto greedy = generate(lm, {.prompt = {7}, .strategy = GreedyOptions{}, .stop = {.max_tokens = 16}});
  EXPECT_EQ(greedy.paths.at(0).extracted_answer, "7");
  EXPECT_EQ(r.paths.at(0).extracted_answer, "9") << r.paths.at(0).text;
}

TEST(Mcts, BadOptionsAreClearErrors) {
  ScriptedModel lm = answer_tree();
  auto error = [&](MctsOptions o, const std::string& field) {
    try {
      generate(lm, tree_request(o));
      ADD_FAILURE() << field << ": no error";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  error({.simulations = 0}, "simulations");
  error({.expand = 0}, "expand");
  error({.c_puct = -1}, "c_puct");
  error({.step_delim = ""}, "step_delim");
  error({.budget_tokens = 0}, "budget_tokens");
  MctsOptions cold;
  cold.sampling.temperature = 0;
  error(cold, "temperature");
  try {
    generate(lm, {.prompt = {7}, .strategy = VerifyOptions{.n_samples = 4}, .stop = {.max_tokens = 8}});
    ADD_FAILURE() << "verify without a verifier";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("verifier"), std::string::npos) << e.what();
  }
}

// Verify-of-N keeps the path the verifier scores highest, where best-of (probability) and vote
// (count) keep the likelier answer.
TEST(Verify, ChoosesByTheVerifier) {
  ScriptedModel lm = answer_tree();
  const SamplingOptions s{.temperature = 1.0f};
  const auto v = generate(lm, {.prompt = {7}, .strategy = VerifyOptions{.n_samples = 16, .sampling = s, .seed = 4},
                               .stop = {.max_tokens = 16}, .verifier = rewards_y});
  ASSERT_EQ(v.paths.size(), 16u);
  EXPECT_EQ(v.paths[0].text, "a\nY");
  EXPECT_EQ(v.paths[0].score, 1.0);
  EXPECT_EQ(v.tokens_generated, 16 * 4);
  for (size_t i = 1; i < v.paths.size(); ++i) EXPECT_LE(v.paths[i].score, v.paths[i - 1].score);
}

// Voting by answer class: two countdown expressions reaching 57 from {3, 12, 7} are one answer
// and outvote two others that differ, which a vote by text would not do.
TEST(Vote, AnswersOfOneClassVoteTogether) {
  auto path = [](const std::string& answer, double logprob) {
    return Path{.tokens = {1}, .logprobs = {float(logprob)}, .cumulative_logprob = logprob,
                .text = " </think> <answer> " + answer + " </answer>"};
  };
  const std::vector<Path> paths = {path("12-7-3", -0.1), path("(12+7)*3", -0.9), path("3*(7+12)", -0.8), path("12+7-3", -0.2)};
  const AnswerKey value = [](const std::string& a) {
    const std::vector<int> n = {3, 12, 7};
    const auto v = countdown_value(a, n);
    return v ? std::to_string(*v) : a;
  };
  const GenerateResult by_text = select_vote(paths, VoteOptions{.n_samples = 4});
  EXPECT_EQ(by_text.votes.size(), 4u);
  EXPECT_EQ(by_text.winner, "12-7-3") << "four answers of one vote each: the most probable";
  const GenerateResult by_value = select_vote(paths, VoteOptions{.n_samples = 4}, value);
  ASSERT_EQ(by_value.votes.size(), 3u);
  EXPECT_EQ(by_value.winner, "(12+7)*3");
  EXPECT_EQ(by_value.votes[0].count, 2);
  EXPECT_EQ(by_value.paths[0].extracted_answer, "3*(7+12)") << "the winning class's paths first, the more probable first";
  EXPECT_EQ(by_value.paths[1].extracted_answer, "(12+7)*3");
}

// On a real model's paged cache: the tree shares its parents' blocks, so the blocks in use never
// pass (prompt + budget) / block + 2 per sequence held (a partly filled block and a copy-on-write
// copy), far below what copying each node's prefix would take; everything is released at the end.
TEST(Mcts, PeakKvBlocksStayWithinTheSharingBound) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const auto m = load_model(::ponder::testing::shared_path("models/stories260K.gguf"));
  std::string text;
  for (int i = 0; i < 12; ++i) text += "Once upon a time there was a little girl named Lily. She liked to play. ";
  const auto prompt = m->tokenizer.encode(text, true, false);
  ASSERT_GT(prompt.size(), 150u);
  const MctsOptions o{.simulations = 6, .expand = 4, .step_delim = " ", .budget_tokens = 300, .seed = 9};
  ModelRunner runner(*m, kv_positions_for(int64_t(prompt.size()), Strategy{o}, 48));
  const auto r = generate(runner, {.prompt = prompt, .strategy = o, .stop = {.max_tokens = 48}});
  const int B = ModelRunner::kBlockSize;
  const int bound = int((int64_t(prompt.size()) + o.budget_tokens + B - 1) / B) + 2 * r.search.peak_sequences + 1;
  EXPECT_GT(r.search.nodes, 4);
  EXPECT_LE(runner.peak_blocks_used(), bound) << "peak sequences " << r.search.peak_sequences;
  std::printf("peak blocks %d (sharing bound %d, copying >= %d), %d sequences held at most, %lld nodes\n",
              runner.peak_blocks_used(), bound, r.search.peak_sequences * int((prompt.size() + B - 1) / B),
              r.search.peak_sequences, (long long)r.search.nodes);
  // Copying every held sequence's whole prefix instead would need at least this many blocks.
  EXPECT_LT(runner.peak_blocks_used(), r.search.peak_sequences * int((prompt.size() + B - 1) / B));
  EXPECT_EQ(runner.pool().n_used(), 0);
  EXPECT_LE(r.tokens_generated, o.budget_tokens);
}

}  // namespace
}  // namespace ponder
