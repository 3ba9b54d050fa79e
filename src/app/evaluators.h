#pragma once
// The Evaluators the CLI and the demo hand to the training loops (train/hooks.h): greedy decoding
// of held-out task items (the task's test split), scored with the task's rewards (eval/evaluate.h).
#include "tasks/task.h"
#include "train/hooks.h"

namespace ponder::app {

// Greedy accuracy, format rate and mean tokens on the first `count` test items of the task, each
// completion at most max_tokens long. Empty (no evaluation) when the task has no name (--data)
// or count is 0.
Evaluator held_out_evaluator(const TaskOptions& task, int count, int max_tokens);

}  // namespace ponder::app
