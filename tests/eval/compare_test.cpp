// `ponder eval`'s pieces on a scripted model whose answers are known: every strategy's accuracy,
// format rate and token count per problem, the 95% interval, MCTS at another strategy's cost, and
// the strategy list's errors.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/compare.h"
#include "eval/evaluate.h"
#include "support/scripted_model.h"

namespace ponder {
namespace {

using ::ponder::testing::ScriptedModel;

// Prompt token 7 + i is problem i. Every completion is "</think> <answer>D</answer>" then EOS (six
// tokens), D = 5 for problems 0 and 2 and 6 for problem 1, with probability 1 at every step.
ScriptedModel known_answers() {
  return ScriptedModel({"<eos>", "</think>", "<answer>", "</answer>", "5", "6", " ", "P0", "P1", "P2"},
                       [](const std::vector<int32_t>& t) {
                         std::vector<double> p(10, 0.0);
                         const int32_t digit = t[0] == 8 ? 5 : 4;
                         static const int32_t script[] = {1, 6, 2, -1, 3, 0};
                         const size_t k = t.size() - 1;  // tokens generated so far
                         p[size_t(k < 6 ? (script[k] < 0 ? digit : script[k]) : 0)] = 1.0;
                         return p;
                       });
}

std::vector<TaskItem> items_all_five() {
  std::vector<TaskItem> items(3);
  for (auto& it : items) it.answer = "5";
  return items;
}

TEST(EvalScripted, EveryStrategyGivesTheKnownAccuracyAndTokens) {
  const std::vector<std::vector<int32_t>> prompts = {{7}, {8}, {9}};
  const auto items = items_all_five();
  const StopOptions stop{.max_tokens = 16};
  const SamplingOptions warm{.temperature = 1.0f};
  struct Case {
    Strategy s;
    double tokens;
  };
  const Case cases[] = {
      {GreedyOptions{}, 6},
      {SampleOptions{.n = 4, .sampling = warm, .seed = 1}, 24},
      {BestOfOptions{.n_samples = 4, .n_return = 1, .sampling = warm, .seed = 1}, 24},
      {VoteOptions{.n_samples = 5, .sampling = warm, .seed = 1}, 30},
      {VerifyOptions{.n_samples = 3, .sampling = warm, .seed = 1}, 18},
      // One step (no newline): two draws of the same finished step, merged into one child.
      {MctsOptions{.simulations = 4, .expand = 2, .budget_tokens = 100, .seed = 1}, 12},
  };
  for (const Case& c : cases) {
    ScriptedModel lm = known_answers();
    const EvalResult r = evaluate(lm, items, prompts, c.s, stop);
    ASSERT_EQ(r.n, 3) << strategy_name(c.s);
    EXPECT_DOUBLE_EQ(r.accuracy, 2.0 / 3.0) << strategy_name(c.s);
    EXPECT_DOUBLE_EQ(r.format_rate, 1.0) << strategy_name(c.s);
    EXPECT_DOUBLE_EQ(r.tokens_per_problem, c.tokens) << strategy_name(c.s);
    EXPECT_DOUBLE_EQ(r.mean_tokens, 6.0) << strategy_name(c.s);
    ASSERT_EQ(r.items.size(), 3u);
    EXPECT_EQ(r.items[0].answer, "5");
    EXPECT_EQ(r.items[1].answer, "6");
    EXPECT_EQ(r.items[1].correct, 0.0);
    const auto [lo, hi] = wilson_interval(2.0 / 3.0, 3);
    EXPECT_EQ(r.ci_low, lo);
    EXPECT_EQ(r.ci_high, hi);
    EXPECT_EQ(lm.n_live(), 0);
  }
}

TEST(EvalScripted, MctsBudgetsPerProblemCapTheTokens) {
  ScriptedModel lm = known_answers();
  const std::vector<std::vector<int32_t>> prompts = {{7}, {8}, {9}};
  const auto items = items_all_five();
  // Budgets of 5 (less than one completion), 6 and 100 tokens.
  const std::vector<int64_t> budgets = {5, 6, 100};
  const EvalResult r = evaluate(lm, items, prompts, MctsOptions{.expand = 2, .seed = 1}, {.max_tokens = 16}, budgets);
  EXPECT_EQ(r.items[0].tokens, 5);
  EXPECT_EQ(r.items[0].correct, 0.0) << "no complete answer within 5 tokens";
  EXPECT_EQ(r.items[1].tokens, 6);
  EXPECT_EQ(r.items[1].correct, 0.0) << "two children drawn, both cut short by the budget";
  EXPECT_EQ(r.items[2].tokens, 12);
  EXPECT_EQ(r.items[2].correct, 1.0);
}

// R1-style answer reading: after "</think>", an <answer> block or \boxed{}, never a bare number.
TEST(EvalAnswers, ReadAsR1EvaluationsDo) {
  EXPECT_EQ(evaluated_answer("so 6*7 = 42</think>\n\nThe answer is \\boxed{42}."), "42");
  EXPECT_EQ(evaluated_answer(" 3+4=7 </think> <answer> 7 </answer>"), "7");
  EXPECT_EQ(evaluated_answer("<answer> 1 </answer></think> the answer is 2"), std::nullopt) << "the reasoning's block does not count";
  EXPECT_EQ(evaluated_answer("</think> the answer is 42"), std::nullopt) << "no bare-number fallback";
  EXPECT_EQ(evaluated_answer("no think tag, \\boxed{5}"), "5") << "no </think>: the whole text";
  TaskItem item{.answer = "42"};
  EXPECT_TRUE(is_correct_completion("</think> \\boxed{42.0}", item));
  EXPECT_FALSE(is_correct_completion("</think> \\boxed{41}", item));
  TaskItem countdown{.answer = "(12+7)*3", .numbers = {3, 12, 7}, .target = 57, .check = AnswerCheck::Countdown};
  EXPECT_TRUE(is_correct_completion("</think> <answer> 3*(7+12) </answer>", countdown));
  EXPECT_FALSE(is_correct_completion("</think> <answer> 12*3+7 </answer>", countdown));
}

// Wilson score intervals worked by hand from (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n),
// z = 1.96: 5/10 -> [0.2366, 0.7634] and 0/10 -> [0, 0.2775] (as printed in tables of the
// interval), 20/20 -> [0.8389, 1], 81/263 -> [0.2553, 0.3662].
TEST(EvalInterval, WilsonMatchesHandComputation) {
  auto near = [](std::pair<double, double> got, double lo, double hi) {
    EXPECT_NEAR(got.first, lo, 5e-5);
    EXPECT_NEAR(got.second, hi, 5e-5);
  };
  near(wilson_interval(0.5, 10), 0.2366, 0.7634);
  near(wilson_interval(0.0, 10), 0.0, 0.2775);
  near(wilson_interval(1.0, 20), 0.8389, 1.0);
  near(wilson_interval(81.0 / 263.0, 263), 0.2553, 0.3662);
  EXPECT_EQ(wilson_interval(0.5, 0), (std::pair<double, double>{0, 0}));
}

TEST(StrategySpecs, ParsesTheList) {
  const SpecDefaults d{.sampling = {.temperature = 0.5f}, .seed = 9};
  const auto s = parse_strategy_specs("greedy, beam:4,sample:8,best-of:8,vote:8,verify:3,mcts:vote:8,mcts:500", d);
  ASSERT_EQ(s.size(), 8u);
  EXPECT_EQ(std::get<BeamOptions>(s[1].strategy).num_beams, 4);
  EXPECT_EQ(std::get<SampleOptions>(s[2].strategy).n, 8);
  EXPECT_EQ(std::get<SampleOptions>(s[2].strategy).sampling.temperature, 0.5f);
  EXPECT_EQ(std::get<VoteOptions>(s[4].strategy).seed, 9u);
  EXPECT_EQ(std::get<VerifyOptions>(s[5].strategy).n_samples, 3);
  EXPECT_EQ(s[6].budget_from, "vote:8");
  EXPECT_EQ(s[7].budget_from, "");
  EXPECT_EQ(std::get<MctsOptions>(s[7].strategy).budget_tokens, 500);
}

TEST(StrategySpecs, BadItemsNameTheItem) {
  for (const auto& [text, says] : std::vector<std::pair<std::string, std::string>>{
           {"greedy,nope", "'nope'"},
           {"vote", "vote needs a count"},
           {"vote:x", "'vote:x'"},
           {"vote:0", "[1, 1024]"},
           {"greedy:2", "greedy takes no count"},
           {"mcts:vote:8", "neither a token count nor an earlier item"},
           {"vote:8,vote:8", "given twice"},
           {"greedy,,vote:8", "an empty item"},
       }) {
    try {
      parse_strategy_specs(text, {});
      ADD_FAILURE() << text << ": no error";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << text << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace ponder
