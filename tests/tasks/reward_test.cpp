// Rewards and the countdown verifier on hand-made completions (rules in tasks/reward.h).
#include <gtest/gtest.h>

#include "core/error.h"
#include "tasks/reward.h"

namespace ponder {
namespace {

TaskItem arith_item() {
  return {.prompt = "Q: 12+7-3= A: <think>", .answer = "16", .reasoning = "12+7=19 19-3=16"};
}

TaskItem countdown_item(std::vector<int> numbers, int64_t target) {
  return {.prompt = "Q: countdown A: <think>", .answer = "", .numbers = std::move(numbers), .target = target,
          .check = AnswerCheck::Countdown};
}

std::string answered(std::string_view answer) {
  return " steps </think> <answer> " + std::string(answer) + " </answer>";
}

TEST(RewardAccuracy, Arith) {
  const TaskItem item = arith_item();
  EXPECT_EQ(accuracy_reward(" 12+7=19 19-3=16 </think> <answer> 16 </answer>", item), 1.0f);
  EXPECT_EQ(accuracy_reward(answered("17"), item), 0.0f);               // wrong
  EXPECT_EQ(accuracy_reward(answered("16.0"), item), 1.0f);             // normalized
  EXPECT_EQ(accuracy_reward(answered("\\boxed{16}"), item), 1.0f);      // a box inside the block
  EXPECT_EQ(accuracy_reward(" 12+7=19 19-3=16 </think> 16", item), 0.0f);  // no answer block
  EXPECT_EQ(accuracy_reward(" </think> <answer> 16", item), 0.0f);      // unclosed block
  EXPECT_EQ(accuracy_reward(answered(""), item), 0.0f);                 // empty block
  EXPECT_EQ(accuracy_reward("<answer>16</answer> <answer>17</answer>", item), 0.0f);  // the last block counts
  EXPECT_EQ(accuracy_reward("<answer>17</answer> <answer>16</answer>", item), 1.0f);
  EXPECT_EQ(accuracy_reward("", item), 0.0f);
  TaskItem negative = item;
  negative.answer = "-50";
  EXPECT_EQ(accuracy_reward(answered("-50"), negative), 1.0f);
  EXPECT_EQ(accuracy_reward(answered("50"), negative), 0.0f);
}

TEST(RewardAccuracy, CountdownUsesTheVerifier) {
  const TaskItem item = countdown_item({3, 12, 7}, 57);
  EXPECT_EQ(accuracy_reward(answered("(12+7)*3"), item), 1.0f);
  EXPECT_EQ(accuracy_reward(answered("3*(7+12)"), item), 1.0f);  // another solution
  EXPECT_EQ(accuracy_reward(answered("57"), item), 0.0f);        // the target alone uses no numbers
  EXPECT_EQ(accuracy_reward(answered("12+7+3"), item), 0.0f);
}

TEST(RewardFormat, Strict) {
  EXPECT_EQ(format_reward(" 12+7=19 19-3=16 </think> <answer> 16 </answer>"), 1.0f);
  EXPECT_EQ(format_reward("x</think><answer>16</answer>"), 1.0f);                  // no whitespace needed
  EXPECT_EQ(format_reward("\nx\n</think>\n\n<answer>\n16\n</answer>\n\n"), 1.0f);  // newlines, trailing whitespace
  EXPECT_EQ(format_reward("</think> <answer> 16 </answer>"), 1.0f);               // empty reasoning
  EXPECT_EQ(format_reward(answered("17")), 1.0f);                                 // format only, not correctness
  // Two think blocks, or a re-opened one.
  EXPECT_EQ(format_reward("a </think> b </think> <answer> 16 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <think> b </think> <answer> 16 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("<think> a </think> <answer> 16 </answer>"), 0.0f);
  // Missing tags.
  EXPECT_EQ(format_reward("a <answer> 16 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> 16 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <answer> 16"), 0.0f);
  EXPECT_EQ(format_reward("a </think> 16"), 0.0f);
  EXPECT_EQ(format_reward(""), 0.0f);
  // Text between the blocks or after the answer; a second answer block.
  EXPECT_EQ(format_reward("a </think> so <answer> 16 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <answer> 16 </answer> done"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <answer> 16 </answer><answer> 17 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <answer> 16 </answer></answer>"), 0.0f);
  // An answer block inside the reasoning; tags or nothing inside the answer.
  EXPECT_EQ(format_reward("a <answer> 1 </answer> </think> <answer> 16 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <answer> 16 <answer> 17 </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <answer> 16 </think> </answer>"), 0.0f);
  EXPECT_EQ(format_reward("a </think> <answer> \n </answer>"), 0.0f);
}

TEST(RewardTinyZero, Scores) {
  const TaskItem item = countdown_item({3, 12, 7}, 57);
  EXPECT_EQ(tinyzero_reward(answered("(12+7)*3"), item), 1.0f);
  EXPECT_EQ(tinyzero_reward("no answer block, (12+7)*3", item), 0.0f);
  EXPECT_EQ(tinyzero_reward("</think> <answer> (12+7)*3", item), 0.0f);  // unclosed
  EXPECT_EQ(tinyzero_reward(answered(""), item), 0.1f);                 // a block, empty
  EXPECT_EQ(tinyzero_reward(answered("12+7+3"), item), 0.1f);           // wrong value
  EXPECT_EQ(tinyzero_reward(answered("12*3+7+7+7"), item), 0.1f);       // 57, but 7 used three times
  EXPECT_EQ(tinyzero_reward(answered("(12+7)*3+3-3"), item), 0.1f);     // 57, but 3 used three times
  EXPECT_EQ(tinyzero_reward(answered("50+7"), item), 0.1f);             // wrong numbers
  EXPECT_EQ(tinyzero_reward(answered("(12+7)*3 = 57"), item), 0.1f);    // not an expression
  // Any task: the same scale over the accuracy check.
  EXPECT_EQ(tinyzero_reward(answered("16"), arith_item()), 1.0f);
  EXPECT_EQ(tinyzero_reward(answered("15"), arith_item()), 0.1f);
  EXPECT_EQ(tinyzero_reward("16", arith_item()), 0.0f);
}

bool check(std::string_view expression, std::vector<int> numbers, int64_t target,
           CountdownDivision division = CountdownDivision::Exact) {
  return check_countdown(expression, numbers, target, division);
}

// What an expression claims: its value when it parses and uses exactly the numbers.
TEST(RewardCountdownVerifier, ValueOfAnExpression) {
  const std::vector<int> n = {3, 12, 7};
  EXPECT_EQ(countdown_value("(12+7)*3", n), 57);
  EXPECT_EQ(countdown_value("3*(7+12)", n), 57);
  EXPECT_EQ(countdown_value("12-7-3", n), 2);
  EXPECT_EQ(countdown_value("12-7*3", n), -9);
  EXPECT_EQ(countdown_value("12+7", n), std::nullopt);     // 3 not used
  EXPECT_EQ(countdown_value("12/7*3", n), std::nullopt);   // inexact division
  EXPECT_EQ(countdown_value("(12+7)*3)", n), std::nullopt);
}

TEST(RewardCountdownVerifier, Expressions) {
  const std::vector<int> n = {3, 12, 7};
  EXPECT_TRUE(check("(12+7)*3", n, 57));
  EXPECT_TRUE(check(" ( 12 + 7 )\n* 3 ", n, 57));  // whitespace between tokens
  EXPECT_TRUE(check("12*3+7*3", {3, 3, 7, 12}, 57));  // a repeated given number, used twice
  EXPECT_FALSE(check("12*3+7*3", n, 57));            // ... but given once
  EXPECT_FALSE(check("12+7", n, 19));                // 3 not used
  EXPECT_FALSE(check("", n, 0));
  EXPECT_FALSE(check("(12+7*3", n, 33));             // unbalanced
  EXPECT_FALSE(check("(12+7)*3)", n, 57));
  EXPECT_FALSE(check("12+7 3", n, 19));              // trailing junk
  EXPECT_FALSE(check("12.0+7+3", n, 22));            // no decimals
  EXPECT_FALSE(check("012+7+3", n, 22));             // no leading zeros (as Python)
  EXPECT_FALSE(check("12+7+3**1", n, 22));           // no powers
  EXPECT_FALSE(check("x+12+7+3", n, 22));
  EXPECT_FALSE(check("(12+7)*3=57", n, 57));
  // Unary signs are operators (Python's eval accepts them, and so does TinyZero).
  EXPECT_TRUE(check("-(2-5)*10", {2, 5, 10}, 30));
  EXPECT_TRUE(check("+12+7+3", n, 22));
  // Division: by zero rejects; a non-exact division rejects unless the rule is Rational.
  EXPECT_FALSE(check("8/(4-4)", {4, 4, 8}, 8));
  EXPECT_FALSE(check("8/(4-4)", {4, 4, 8}, 8, CountdownDivision::Rational));
  EXPECT_FALSE(check("6/4*2", {6, 4, 2}, 3));
  EXPECT_TRUE(check("6/4*2", {6, 4, 2}, 3, CountdownDivision::Rational));
  EXPECT_TRUE(check("6*2/4", {6, 4, 2}, 3));
  EXPECT_FALSE(check("7/2", {7, 2}, 3));  // no floor division either
  EXPECT_FALSE(check("7/2", {7, 2}, 3, CountdownDivision::Rational));
  EXPECT_TRUE(check("(1/3+2/3)*5", {1, 3, 2, 3, 5}, 5, CountdownDivision::Rational));
  // Overflow and deep nesting fail cleanly.
  EXPECT_FALSE(check("999999999999999999*999999999999999999", {1, 1}, 1));
  EXPECT_FALSE(check("1234567890123456789012", {1}, 1));
  EXPECT_FALSE(check(std::string(100000, '(') + "1" + std::string(100000, ')'), {1}, 1));
  EXPECT_FALSE(check(std::string(100000, '-') + "1", {1}, 1));
}

TEST(RewardOverlong, DapoBoundaries) {
  // L_max = 100, L_cache = 20: free up to 80 tokens, then linear down to -1 at 100, -1 beyond.
  EXPECT_EQ(overlong_penalty(0, 100, 20), 0.0f);
  EXPECT_EQ(overlong_penalty(80, 100, 20), 0.0f);
  EXPECT_FLOAT_EQ(overlong_penalty(81, 100, 20), -1.0f / 20.0f);
  EXPECT_FLOAT_EQ(overlong_penalty(90, 100, 20), -0.5f);
  EXPECT_FLOAT_EQ(overlong_penalty(99, 100, 20), -19.0f / 20.0f);
  EXPECT_EQ(overlong_penalty(100, 100, 20), -1.0f);
  EXPECT_EQ(overlong_penalty(101, 100, 20), -1.0f);
  EXPECT_EQ(overlong_penalty(100000, 100, 20), -1.0f);
  // No cache: a step at L_max. The whole length as cache: linear from 0.
  EXPECT_EQ(overlong_penalty(100, 100, 0), 0.0f);
  EXPECT_EQ(overlong_penalty(101, 100, 0), -1.0f);
  EXPECT_EQ(overlong_penalty(0, 100, 100), 0.0f);
  EXPECT_FLOAT_EQ(overlong_penalty(25, 100, 100), -0.25f);
}

TEST(RewardSpecParse, Good) {
  const RewardSpec s = parse_reward_spec("accuracy:1,format:0.5");
  ASSERT_EQ(s.terms.size(), 2u);
  EXPECT_EQ(s.terms[0], std::make_pair(RewardKind::Accuracy, 1.0f));
  EXPECT_EQ(s.terms[1], std::make_pair(RewardKind::Format, 0.5f));
  const RewardSpec t = parse_reward_spec(" tinyzero , format : -0.25 ,overlong:2", 100, 20);
  ASSERT_EQ(t.terms.size(), 3u);
  EXPECT_EQ(t.terms[0], std::make_pair(RewardKind::TinyZero, 1.0f));  // weight 1 when omitted
  EXPECT_EQ(t.terms[1], std::make_pair(RewardKind::Format, -0.25f));
  EXPECT_EQ(t.terms[2], std::make_pair(RewardKind::Overlong, 2.0f));
  EXPECT_EQ(t.max_len, 100);
  EXPECT_EQ(t.cache_len, 20);
  for (RewardKind k : {RewardKind::Accuracy, RewardKind::Format, RewardKind::TinyZero, RewardKind::Overlong})
    EXPECT_EQ(parse_reward_spec(reward_name(k), 10, 5).terms[0].first, k);
}

TEST(RewardSpecParse, Bad) {
  for (const char* bad : {"", " ", "speed:1", "accuracy:abc", "accuracy:", "accuracy:1x", "accuracy:inf",
                          "accuracy:nan", "accuracy:1e40", "accuracy:1,,format:1", "accuracy:1,", "accuracy,accuracy:2",
                          "Accuracy:1", "accuracy:1:2"}) {
    EXPECT_THROW(parse_reward_spec(bad), InvalidArgument) << bad;
  }
  EXPECT_THROW(parse_reward_spec("overlong:1"), InvalidArgument);            // no max_len
  EXPECT_THROW(parse_reward_spec("overlong:1", 100, 101), InvalidArgument);  // cache beyond max
  EXPECT_THROW(parse_reward_spec("overlong:1", 100, -1), InvalidArgument);
  try {
    parse_reward_spec("accuracy:1,speed:2");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("'speed'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("accuracy, format, tinyzero, overlong"), std::string::npos) << e.what();
  }
}

TEST(RewardTotal, WeightedSumAndBreakdown) {
  const RewardSpec spec = parse_reward_spec("accuracy:1,format:0.5,overlong:1", 100, 20);
  const TaskItem item = arith_item();
  const std::string right = " 12+7=19 19-3=16 </think> <answer> 16 </answer>";
  RewardBreakdown b = compute_rewards(spec, right, 90, item);
  EXPECT_EQ(b.values, (std::vector<float>{1.0f, 1.0f, -0.5f}));
  EXPECT_FLOAT_EQ(b.total, 1.0f);
  EXPECT_FLOAT_EQ(total_reward(spec, right, 10, item), 1.5f);
  b = compute_rewards(spec, "16 </think> 16 <answer>", 200, item);
  EXPECT_EQ(b.values, (std::vector<float>{0.0f, 0.0f, -1.0f}));
  EXPECT_FLOAT_EQ(b.total, -1.0f);
  EXPECT_FLOAT_EQ(total_reward(parse_reward_spec("format:0.5"), answered("15"), 5, item), 0.5f);
  EXPECT_THROW(compute_rewards(RewardSpec{}, right, 1, item), InvalidArgument);
  // Countdown division rule travels in the spec.
  RewardSpec rational = parse_reward_spec("accuracy");
  const TaskItem cd = countdown_item({6, 4, 2}, 3);
  EXPECT_FLOAT_EQ(total_reward(rational, answered("6/4*2"), 5, cd), 0.0f);
  rational.countdown_division = CountdownDivision::Rational;
  EXPECT_FLOAT_EQ(total_reward(rational, answered("6/4*2"), 5, cd), 1.0f);
}

}  // namespace
}  // namespace ponder
