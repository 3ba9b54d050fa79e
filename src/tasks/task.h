#pragma once
// Built-in verifiable tasks: generated problems with a checkable answer and a step-by-step trace for
// SFT, sized for tiny character-level models (context 256).
//
// Tasks (TaskOptions::name):
//  * "arith": integer arithmetic; the answer is the value, e.g. "12+7-3" -> "16". Operands 1..99,
//    every intermediate value and the result |x| < 1000.
//      difficulty 0: three operands 1..9, + and - only, left to right ("3+7-5"): the demo's level;
//      difficulty 1: three operands, + and - only, left to right ("12+7-3");
//      difficulty 2: three operands, + - *, at least one *, parentheses where the tree needs them;
//      difficulty 3: four operands, + - * and exact /, at least one * or /.
//  * "countdown" (as TinyZero): reach the target with the given numbers, each used exactly once, and
//    + - * / (division only when exact). The target comes from a random expression over the numbers,
//    so a solution exists; the reference answer is that expression ("(12+7)*3"). Every intermediate
//    value of the reference is an integer in 1..999, and so is the target.
//      difficulty 1: three numbers in 1..20, + - *;  2: three numbers in 1..99, + - * /;
//      difficulty 3: four numbers in 1..99, + - * /.
//
// Prompt templates (TaskOptions::prompt_template), both ending in "<think>":
//  * Compact (default): "Q: 12+7-3= A: <think>" and "Q: make 57 with 3 12 7 A: <think>".
//  * R1Zero: the DeepSeek-R1-Zero template, "A conversation between User and Assistant. ... User:
//    What is 12+7-3? Assistant: <think>" (about 400 characters: too long for a 256-character context).
// The SFT completion continues the prompt: " 12+7=19 19-3=16 </think> <answer> 16 </answer>" (see
// sft_completion). Everything is printable ASCII.
//
// Determinism and splits: item i of (name, split, seed, difficulty) is the same whatever the count,
// (difficulty -1 and the task's default level give the same items)
// the template or the machine. Train and test are disjoint by construction: each problem's canonical
// form (arith: the expression; countdown: the sorted numbers and the target) is hashed, with no seed,
// and the hash alone puts the problem in train (7/8 of problems) or test (1/8). A generator draws
// problems until one falls in the requested split, so the same problem can never be in both splits,
// for any seeds. Repeats inside one split are possible (independent draws).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ponder {

enum class Split { Train, Test };
enum class PromptTemplate { Compact, R1Zero };

// Where a completion puts its final answer (tasks/reward.h judges it):
//   Tags: "... </think> <answer> 16 </answer>" (ponder's compact and the R1-Zero templates);
//   Boxed: "...\n</think>\n\nThe answer is \boxed{16}." (chat templates: R1-Distill, ChatML;
//   decode/item_format.h).
enum class AnswerStyle { Tags, Boxed };

// How a completion's answer is checked (tasks/reward.h).
enum class AnswerCheck {
  Match,      // the normalized answer equals the normalized reference (arith, data from files)
  Countdown,  // the answer is an expression over `numbers` that evaluates to `target`
};

struct TaskItem {
  std::string prompt;           // exactly what the model sees; ends with "<think>"
  std::string question;         // the question alone, the user message of a chat template:
                                // "What is 12+7-3?" (data files: their "prompt")
  AnswerStyle style = AnswerStyle::Tags;  // the answer format `prompt` asks for
  std::string answer;           // the reference answer text
  std::string reasoning;        // the step-by-step trace for SFT, e.g. "12+7=19 19-3=16" (no outer spaces)
  std::vector<int> numbers;     // countdown: the given numbers, in prompt order
  int64_t target = 0;           // countdown: the target
  AnswerCheck check = AnswerCheck::Match;
};

struct TaskOptions {
  std::string name = "arith";  // "arith" or "countdown"
  Split split = Split::Train;
  uint64_t seed = 0;
  int difficulty = -1;  // 1..3 (arith also 0); -1: the task's default level (default_difficulty)
  PromptTemplate prompt_template = PromptTemplate::Compact;
};

// The task names generate_items accepts.
const std::vector<std::string_view>& task_names();
// InvalidArgument naming the option and the accepted values.
void validate_task_options(const TaskOptions& options);
// The one default of every command (task, train, sample, demo): the task's easiest level, arith 0
// (the demo's level) and countdown 1. InvalidArgument for an unknown task.
int default_difficulty(std::string_view task);
// options.difficulty, or the task's default when it is -1: the level the items are drawn at.
int task_difficulty(const TaskOptions& options);

// Items index .. index+count-1 of the task (validates the options; count >= 0).
std::vector<TaskItem> generate_items(const TaskOptions& options, int count, int64_t first_index = 0);
TaskItem generate_item(const TaskOptions& options, int64_t index);

// The completion that continues item.prompt in SFT data:
//   " " + reasoning + " </think> <answer> " + answer + " </answer>"
// (without the leading " " + reasoning when the reasoning is empty). The trainer appends the
// tokenizer's end-of-sequence token; it is not part of the text.
std::string sft_completion(const TaskItem& item);

// The split the hash of a canonical problem text assigns it to (exposed for tests).
Split split_of_problem(std::string_view canonical);

// "train" / "test", "compact" / "r1zero"; InvalidArgument otherwise.
Split parse_split(std::string_view text);
PromptTemplate parse_prompt_template(std::string_view text);

}  // namespace ponder
