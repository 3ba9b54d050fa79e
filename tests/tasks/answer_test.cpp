// extract_answer and normalize_answer on hand-made strings (rules in tasks/answer.h).
#include <gtest/gtest.h>

#include "tasks/answer.h"

namespace ponder {
namespace {

void expect_answer(std::string_view text, std::optional<std::string> expected) {
  EXPECT_EQ(extract_answer(text), expected) << "text: " << text;
}

TEST(AnswerExtract, AnswerBlock) {
  expect_answer("<think> x </think> <answer> 7 </answer>", "7");
  expect_answer("<answer>3</answer> then <answer>\n Paris \n</answer> and 99", "Paris");
  expect_answer("<answer>The result is \\boxed{12}.</answer>", "12");  // a box inside the block
  expect_answer("<answer>5</answer> trailing <answer>6", "5");          // the unclosed block is ignored
  expect_answer("<answer>  </answer> but 42", std::nullopt);            // empty block: no answer
  expect_answer("</answer> only a closing tag, 8", "8");
  expect_answer("<answer> only an opening tag, 9", "9");
}

TEST(AnswerExtract, Boxed) {
  expect_answer("So 17*23 = \\boxed{391}.", "391");
  expect_answer("\\boxed{1} first, finally \\boxed{ 2 } 100", "2");
  expect_answer("$\\boxed{\\frac{1}{2}}$", "\\frac{1}{2}");
  expect_answer("\\boxed{\\sqrt{\\frac{a}{b}} + {c}}", "\\sqrt{\\frac{a}{b}} + {c}");
  expect_answer("\\boxed{3} then cut off \\boxed{\\frac{1}{", "3");  // unclosed: the earlier box
  expect_answer("\\boxed{4} and \\boxed{}", "4");                     // empty: the earlier box
  expect_answer("within \\boxed{} I say 12", "12");                     // no usable box: a number
  expect_answer("$\\boxed 5$", "5");                                    // short form
  expect_answer("\\boxed x+1 = 3", "x+1");
  expect_answer("\\boxed {7}", "7");
  expect_answer("\\boxedfoo 3", "3");  // another command: falls through to numbers
}

TEST(AnswerExtract, LastNumber) {
  expect_answer("The answer is 42.", "42");
  expect_answer("first 3, then 4.5, finally -17", "-17");
  expect_answer("Total: 1,234 apples", "1234");
  expect_answer("1,234,567 or so", "1234567");
  expect_answer("values 1,23", "23");   // not a thousands group
  expect_answer("price 3.50 dollars", "3.50");
  expect_answer("about .5 of it", ".5");
  expect_answer("x2 and y3 but 5", "5"); // numbers inside words are skipped
  expect_answer("only x2 here", std::nullopt);
  expect_answer("2x + 3 = 7", "7");
  expect_answer("3-5", "5");             // a minus after a digit is an operator
  expect_answer("x = -0.25", "-0.25");
  expect_answer("version v1.2.3 and 1.2.3", std::nullopt);
  expect_answer("1e5 is scientific, 6.02e23 too", std::nullopt);
  expect_answer("答案是42", "42");          // non-ASCII letters do not glue
  expect_answer("10% of 50%", "50");
  expect_answer("no digits here", std::nullopt);
  expect_answer("", std::nullopt);
}

TEST(AnswerNormalize, Numbers) {
  EXPECT_EQ(normalize_answer("42"), "42");
  EXPECT_EQ(normalize_answer("42.0"), "42");
  EXPECT_EQ(normalize_answer("-0"), "0");
  EXPECT_EQ(normalize_answer("-0.000"), "0");
  EXPECT_EQ(normalize_answer("1,234"), "1234");
  EXPECT_EQ(normalize_answer("3.50"), "3.5");
  EXPECT_EQ(normalize_answer("+5"), "5");
  EXPECT_EQ(normalize_answer("007"), "7");
  EXPECT_EQ(normalize_answer(".5"), "0.5");
  EXPECT_EQ(normalize_answer("-12.340"), "-12.34");
  EXPECT_EQ(normalize_answer("123456789012345678901234567890"), "123456789012345678901234567890");
}

TEST(AnswerNormalize, Decorations) {
  EXPECT_EQ(normalize_answer("  42. "), "42");
  EXPECT_EQ(normalize_answer("$42$"), "42");
  EXPECT_EQ(normalize_answer("$ 3.50 $."), "3.5");
  EXPECT_EQ(normalize_answer("- 4"), "-4");
  EXPECT_EQ(normalize_answer("1 234"), "1234");
  EXPECT_EQ(normalize_answer("\\frac{1}{2}"), "\\frac{1}{2}");
  EXPECT_EQ(normalize_answer("x + 1"), "x+1");
  EXPECT_EQ(normalize_answer("Paris."), "Paris");
  EXPECT_EQ(normalize_answer(""), "");
  EXPECT_EQ(normalize_answer("$"), "");
}

TEST(AnswerNormalize, TextStaysText) {
  EXPECT_EQ(normalize_answer("1e5"), "1e5");  // scientific notation is not parsed
  EXPECT_EQ(normalize_answer("1/2"), "1/2");
  EXPECT_EQ(normalize_answer("1,23"), "1,23");
  EXPECT_EQ(normalize_answer("1.2.3"), "1.2.3");
  EXPECT_EQ(normalize_answer("-"), "-");
}

TEST(AnswerNormalize, VotesAgree) {
  EXPECT_EQ(normalize_answer(*extract_answer("so \\boxed{1,234.0}")), normalize_answer(*extract_answer("It is 1234.")));
  EXPECT_NE(normalize_answer("42"), normalize_answer("4.2"));
}

}  // namespace
}  // namespace ponder
