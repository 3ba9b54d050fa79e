#pragma once
// Splits an R1-style completion into its reasoning and its answer, as vLLM's deepseek_r1 reasoning
// parser does for a whole (non-streamed) output: the R1 distill prompt already ends with "<think>\n",
// so a completion usually holds only "reasoning</think>answer".
//
// * Everything before the first "</think>" is reasoning, even without an opening "<think>"; a leading
//   "<think>" (after whitespace) is removed. Differences from vLLM: vLLM drops the text before the
//   first "<think>" wherever it is, and does not trim.
// * The answer is everything after that first "</think>" (later "</think>" tags stay in the answer).
// * Without "</think>" the whole text is reasoning, the answer is empty, has_end_tag is false
//   (an unfinished or truncated chain of thought).
// * Both parts are trimmed of surrounding whitespace.
#include <string>
#include <string_view>

namespace ponder {

struct ReasoningSplit {
  std::string reasoning;
  std::string answer;
  bool has_end_tag = false;  // the text contained "</think>"
};

ReasoningSplit split_reasoning(std::string_view text);

// The answer a completion gives, extracted and normalized (tasks/answer.h: <answer>, \boxed{}, else
// the last number): read from split.answer when the text has "</think>", else from the whole
// text; "" when there is none. split: split_reasoning(text).
std::string final_answer(const ReasoningSplit& split, std::string_view text);

}  // namespace ponder
