#pragma once
// How task items and SFT examples are written for one model, so that SFT data, GRPO rollouts,
// rejection sampling and held-out evaluation all prompt it the same way:
//  * Compact (ponder's own models, and any GGUF without a chat template): the item's prompt as the
//    task writes it ("Q: 12+7-3= A: <think>"), the completion
//    " 12+7=19 19-3=16 </think> <answer> 16 </answer>" (tasks/task.h), answers in <answer> tags.
//  * A chat template (R1-Distill, ChatML; formats/chat_template.h): the question is the user
//    message, rendered by the template with its generation prompt, which opens the think block
//    (R1: "<｜User｜>What is 12+7-3?<｜Assistant｜><think>\n"; ChatML gets "<think>\n" after
//    "<|im_start|>assistant\n"); the completion is
//    "12+7=19 19-3=16\n</think>\n\nThe answer is \boxed{16}." and rewards read the \boxed{} answer
//    after "</think>" (AnswerStyle::Boxed).
// The trainer appends the tokenizer's end-of-sequence token after every completion (R1:
// "<｜end▁of▁sentence｜>"), and tokenizes prompts and completions with their special tokens parsed,
// as Hugging Face tokenizers (TRL) and the engine's own prompts do.
#include <optional>
#include <string>
#include <utility>

#include "formats/chat_template.h"
#include "formats/gguf.h"
#include "tasks/dataset.h"
#include "tasks/task.h"

namespace ponder {

struct ItemFormat {
  std::optional<ChatFormat> chat;  // nullopt: compact

  // The item as the model is prompted with it: prompt rendered (compact: unchanged), style set.
  TaskItem apply(TaskItem item) const;
  // The SFT completion of a task item, without the end-of-sequence token.
  std::string completion(const TaskItem& item) const;
  // An example of an SFT data file as (prompt text, completion text). Its "prompt" is the whole
  // prompt (compact) or the user message (chat); {"reasoning", "answer"} examples get
  // " " + reasoning + " </think> <answer> " + answer + " </answer>" (compact) or
  // reasoning + "\n</think>\n\n" + answer (chat).
  std::pair<std::string, std::string> example(const SftExample& e) const;
  // What a data file holds as "prompt" for the item: the whole prompt (compact) or the question.
  std::string data_prompt(const TaskItem& item) const;
  std::string name() const;  // "compact", "r1", "chatml"
};

// The format of a GGUF's tokenizer.chat_template: compact when it is ponder's compact template or
// absent; R1 or ChatML when detect_chat_format recognises it; FormatError naming the file for
// another template.
ItemFormat item_format_of(const GgufFile& f);

}  // namespace ponder
