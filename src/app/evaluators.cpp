#include "app/evaluators.h"

#include <memory>

#include "core/error.h"
#include "eval/evaluate.h"

namespace ponder::app {

Evaluator held_out_evaluator(const TaskOptions& task, int count, int max_tokens) {
  if (count < 0) throw InvalidArgument("--eval-count must be >= 0, got " + std::to_string(count));
  if (task.name.empty() || count == 0) return {};
  TaskOptions test = task;
  test.split = Split::Test;
  auto items = std::make_shared<const std::vector<TaskItem>>(generate_items(test, count));
  return [items, max_tokens](const Model& model, const ItemFormat& format) {
    std::vector<TaskItem> prompted;
    for (const TaskItem& item : *items) prompted.push_back(format.apply(item));
    const EvalResult e = evaluate(model, prompted, GreedyOptions{}, {.max_tokens = max_tokens});
    return HeldOutScore{.accuracy = e.accuracy, .format_rate = e.format_rate, .mean_tokens = e.mean_tokens};
  };
}

}  // namespace ponder::app
