#pragma once
// Accuracy of a model on task items with a decoding strategy: the strategy x task evaluation of
// the demo and of `ponder train` (held-out accuracy).
#include <span>
#include <string>
#include <vector>

#include "decode/options.h"
#include "model/model.h"
#include "tasks/task.h"

namespace ponder {

struct EvalResult {
  int n = 0;
  double accuracy = 0;             // fraction of items whose chosen answer is right
  double format_rate = 0;          // fraction whose chosen path has the strict format
  double mean_tokens = 0;          // tokens of the chosen path, averaged over items
  double tokens_per_problem = 0;   // every token the engine generated, per item: all sampled paths
                                   // (best-of's unreturned ones too), every beam's tokens
  double seconds_per_problem = 0;
};

// Greedy and sampled strategies run every item in one batch (all paths of all prompts step
// together); beam, best-of and vote run item by item. The chosen path is the first returned (the
// vote winner's best path for voting).
EvalResult evaluate(const Model& model, std::span<const TaskItem> items, const Strategy& strategy,
                    const StopOptions& stop);

// The greedy completion (token ids) of every item, all items in one batch.
std::vector<std::vector<int32_t>> greedy_completions(const Model& model, std::span<const TaskItem> items,
                                                     const StopOptions& stop);
// The indices of the items whose greedy completions differ between models a and b (empty: the
// same tokens for every item), e.g. the trained weights in memory and the exported GGUF read back.
std::vector<size_t> greedy_differences(const Model& a, const Model& b, std::span<const TaskItem> items,
                                       const StopOptions& stop);

}  // namespace ponder
