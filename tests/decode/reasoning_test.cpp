// split_reasoning on hand-made completions (rules in decode/reasoning.h).
#include <gtest/gtest.h>

#include "decode/reasoning.h"

namespace ponder {
namespace {

void expect_split(std::string_view text, std::string_view reasoning, std::string_view answer, bool has_end_tag) {
  SCOPED_TRACE(std::string(text));
  ReasoningSplit s = split_reasoning(text);
  EXPECT_EQ(s.reasoning, reasoning);
  EXPECT_EQ(s.answer, answer);
  EXPECT_EQ(s.has_end_tag, has_end_tag);
}

TEST(ReasoningSplit, WithoutOpeningTag) {
  // The R1 distill prompt ends with "<think>\n", so completions start inside the reasoning.
  expect_split("abc</think>\n\nThe answer is 42.", "abc", "The answer is 42.", true);
  expect_split("\nLet me think.\n2+2=4.\n</think>\n\n**4**\n", "Let me think.\n2+2=4.", "**4**", true);
}

TEST(ReasoningSplit, WithOpeningTag) {
  expect_split("<think>\nabc\n</think>\n\nThe answer is 42.", "abc", "The answer is 42.", true);
  expect_split("  <think>abc</think>42", "abc", "42", true);
  // Only a leading tag is removed; a later one is part of the reasoning.
  expect_split("x <think> y </think> z", "x <think> y", "z", true);
}

TEST(ReasoningSplit, NoEndTag) {
  expect_split("Still thinking about 17*23 ...", "Still thinking about 17*23 ...", "", false);
  expect_split("<think>\nhalf a thought", "half a thought", "", false);
}

TEST(ReasoningSplit, SeveralEndTags) {
  // The first "</think>" ends the reasoning; the rest stays in the answer.
  expect_split("a</think>b</think>c", "a", "b</think>c", true);
}

TEST(ReasoningSplit, EmptyAndOnlyTags) {
  expect_split("", "", "", false);
  expect_split("   \n", "", "", false);
  expect_split("</think>", "", "", true);
  expect_split("<think></think>", "", "", true);
  expect_split("<think>\n\n</think>\n\n", "", "", true);
  expect_split("<think>", "", "", false);
  expect_split("</think>42", "", "42", true);
}

TEST(ReasoningSplit, R1ZeroStyle) {
  expect_split("<think> x </think> <answer> 7 </answer>", "x", "<answer> 7 </answer>", true);
}

}  // namespace
}  // namespace ponder
