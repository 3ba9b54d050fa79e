#pragma once
// Rule-based rewards of a completion (the text generated after a prompt that ends in "<think>") for a
// task item, composed as a weighted sum. All of them read only the completion text, its length in
// tokens and the item; none needs a model.
//
// Terms (names as parse_reward_spec reads them), for items of AnswerStyle::Tags (tasks/task.h):
//  * "accuracy": 1 when the completion holds a complete "<answer>...</answer>" block and its answer
//    (extract_answer: the last complete block, its \boxed{} content if any, trimmed) is correct,
//    else 0. No block, no credit: a bare number elsewhere does not count. Correct means:
//      AnswerCheck::Match: normalize_answer(answer) == normalize_answer(item.answer);
//      AnswerCheck::Countdown: check_countdown(answer, item.numbers, item.target).
//  * "format" (strict): 1 when the completion is exactly
//        R "</think>" W "<answer>" A "</answer>" W
//    where W is optional whitespace (space, \t, \n, \r), R (the reasoning, may be empty) and A (the
//    answer, not blank) contain none of the four tags "<think>", "</think>", "<answer>",
//    "</answer>"; else 0. So: exactly one think block (opened by the prompt) and one answer block,
//    nothing before the reasoning's end but reasoning, nothing after "</answer>" but whitespace. The
//    text must not contain the end-of-sequence token's text (decoders stop on it and drop it).
//  * "tinyzero": TinyZero's countdown score: 0 without a complete answer block, 1 when the answer is
//    correct (as "accuracy"), else 0.1 (a block is there, even empty, but the answer is wrong or does
//    not parse). Differences from TinyZero's compute_score: it reads the text after "Assistant:" and
//    only its last line; here the completion is given and the last complete block anywhere counts.
//  Items of AnswerStyle::Boxed (chat templates): the answer is the last usable "\boxed{...}" after
//  the first "</think>" (the prompt opened the think block): "accuracy" 1 when there is one and it
//  is correct; "format" 1 when the completion is R "</think>" A with R and A free of the four tags
//  and A holding a usable \boxed{}; "tinyzero" 0 without a "\boxed" after "</think>", else as above.
//  * "overlong": DAPO's soft overlong punishment over the completion length n in tokens, with
//    L = max_len and C = cache_len: 0 when n <= L - C; (L - C - n) / C when L - C < n <= L (from 0
//    down to -1); -1 when n > L. Give it a positive weight: the value is already negative.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tasks/task.h"

namespace ponder {

enum class RewardKind { Accuracy, Format, TinyZero, Overlong };

// Countdown division semantics. Exact (default, the Countdown game): every division must divide
// exactly, all values stay integers. Rational: true division with exact fractions, as TinyZero's
// Python eval does (6/4*2 = 3 is accepted); only the final value must equal the target.
enum class CountdownDivision { Exact, Rational };

struct RewardSpec {
  std::vector<std::pair<RewardKind, float>> terms;  // (kind, weight); each kind at most once
  int max_len = 0;    // "overlong": L_max in tokens (> 0 when the term is used)
  int cache_len = 0;  // "overlong": L_cache in tokens, 0 <= cache_len <= max_len
  CountdownDivision countdown_division = CountdownDivision::Exact;
};

struct RewardBreakdown {
  std::vector<float> values;  // values[i]: the unweighted value of spec.terms[i]
  float total = 0;            // sum of weight * value
};

// "accuracy:1,format:0.5": comma-separated NAME[:WEIGHT] (weight 1 when omitted; finite; spaces
// around items allowed). InvalidArgument on an unknown name, a bad or non-finite weight, a repeated
// name or an empty spec. max_len and cache_len are set on the result and validated.
RewardSpec parse_reward_spec(std::string_view text, int max_len = 0, int cache_len = 0);
void validate_reward_spec(const RewardSpec& spec);  // InvalidArgument
std::string_view reward_name(RewardKind kind);

RewardBreakdown compute_rewards(const RewardSpec& spec, std::string_view completion, int completion_tokens,
                                const TaskItem& item);
float total_reward(const RewardSpec& spec, std::string_view completion, int completion_tokens, const TaskItem& item);

// The single terms.
float accuracy_reward(std::string_view completion, const TaskItem& item,
                      CountdownDivision division = CountdownDivision::Exact);
float format_reward(std::string_view completion, AnswerStyle style = AnswerStyle::Tags);
float tinyzero_reward(std::string_view completion, const TaskItem& item,
                      CountdownDivision division = CountdownDivision::Exact);
float overlong_penalty(int completion_tokens, int max_len, int cache_len);

// The countdown verifier, which knows no solution. The expression grammar:
//   expr := term (('+' | '-') term)*      term := unary (('*' | '/') unary)*
//   unary := ('+' | '-') unary | primary   primary := NUMBER | '(' expr ')'
// NUMBER is ASCII digits without a leading zero ("0" itself is fine, as in Python); spaces, tabs and
// newlines may separate tokens. Anything else (decimals, '=', '**', letters) fails to parse. The
// arithmetic is exact (64-bit, overflow rejects); division by zero rejects. True when the expression
// parses, evaluates without error to exactly `target`, and its numbers, as a multiset, equal `numbers`
// (each given number used exactly once, nothing else: TinyZero's validate_equation).
bool check_countdown(std::string_view expression, std::span<const int> numbers, int64_t target,
                     CountdownDivision division = CountdownDivision::Exact);
// The integer value of an expression that parses and uses exactly `numbers` (the grammar and rules
// above), else nullopt: what a countdown answer claims to reach. Two answers with the same value
// make the same claim (answer voting groups them: eval/evaluate.h item_answer_key).
std::optional<int64_t> countdown_value(std::string_view expression, std::span<const int> numbers,
                                       CountdownDivision division = CountdownDivision::Exact);

}  // namespace ponder
