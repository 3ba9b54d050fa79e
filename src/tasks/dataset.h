#pragma once
// JSONL task data: one JSON object per line.
//  * RL data: {"prompt": str, "answer": str} and, for countdown problems, also
//    {"numbers": [int, ...], "target": int} (both or neither; with them the answer is checked by the
//    countdown verifier, without them by normalized text match).
//  * SFT data: {"prompt": str, "completion": str}, the completion continues the prompt; or
//    {"prompt": str, "reasoning": str, "answer": str}, whose completion the model's format writes
//    (decode/item_format.h). With a chat model (an R1 or ChatML template) "prompt" is the user
//    message, rendered by the template; with ponder's compact format it is the whole prompt.
// Other keys are ignored; empty (whitespace-only) lines are skipped. Reading throws FormatError as
// "FILE:LINE: ..." naming the field for a missing field or a wrong type, and FormatError for bad
// JSON, a line that is not an object, or a file that cannot be opened.
// Writing emits one compact object per line in the key order above.
#include <iosfwd>
#include <span>
#include <string>
#include <vector>

#include "tasks/task.h"

namespace ponder {

struct SftExample {
  std::string prompt;
  std::string completion;         // when !structured
  std::string reasoning, answer;  // when structured
  bool structured = false;        // given as {"prompt", "reasoning", "answer"}
};

std::vector<TaskItem> read_rl_dataset(const std::string& path);
std::vector<SftExample> read_sft_dataset(const std::string& path);
// The same from a stream; `name` stands for the file in messages.
std::vector<TaskItem> read_rl_jsonl(std::istream& in, const std::string& name);
std::vector<SftExample> read_sft_jsonl(std::istream& in, const std::string& name);

// One line without the newline. InvalidArgument when a text is not valid UTF-8.
std::string rl_json_line(const TaskItem& item);
std::string sft_json_line(const SftExample& example);
SftExample make_sft_example(const TaskItem& item);  // prompt + sft_completion(item)

void write_rl_jsonl(std::ostream& out, std::span<const TaskItem> items);
void write_sft_jsonl(std::ostream& out, std::span<const TaskItem> items);

}  // namespace ponder
