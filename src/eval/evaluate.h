#pragma once
// Accuracy of a model on task items with a decoding strategy: the strategy x task evaluation of
// `ponder eval`, the demo and `ponder train` (held-out accuracy).
#include <optional>
#include <span>
#include <string_view>
#include <string>
#include <utility>
#include <vector>

#include "decode/language_model.h"
#include "decode/options.h"
#include "model/model.h"
#include "tasks/task.h"

namespace ponder {

// The answer an evaluation reads from a completion, as R1-style evaluations do: in the text after
// the first "</think>" (all of it when there is none), the last complete <answer> block (its
// \boxed{} content if it holds one), else the last \boxed{}; nullopt when there is neither (no
// bare-number fallback).
std::optional<std::string> evaluated_answer(std::string_view completion);
// That answer is right: the item's reference (normalized) or, for countdown, an expression over the
// item's numbers reaching its target (tasks/reward.h check_countdown).
bool is_correct_completion(std::string_view completion, const TaskItem& item);

// One item under one strategy.
struct ItemOutcome {
  std::string answer;     // the chosen path's extracted, normalized answer ("" when none)
  double correct = 0;     // is_correct_completion of the chosen path (sample:N: the mean over the N paths)
  double formatted = 0;   // the strict R1-Zero format reward (tasks/reward.h), likewise
  int64_t tokens = 0;     // every token generated for the item (all paths, beams, rollouts)
  int64_t chosen_tokens = 0;
};

struct EvalResult {
  int n = 0;
  double accuracy = 0;             // mean of ItemOutcome::correct
  double ci_low = 0, ci_high = 0;  // 95% Wilson score interval of the accuracy over n items
  double format_rate = 0;          // mean of ItemOutcome::formatted
  double mean_tokens = 0;          // tokens of the chosen path, averaged over items
  double tokens_per_problem = 0;   // every token the engine generated, per item: all sampled paths
                                   // (best-of's unreturned ones too), every beam's, every rollout's
  double seconds_per_problem = 0;
  std::vector<ItemOutcome> items;
};

// The verifier of a task item: 1 when is_correct_completion, else 0. Countdown's needs no
// reference answer: it checks the expression against the numbers and the target.
Verifier item_verifier(const TaskItem& item);

// The answer classes of a task item for voting: countdown expressions that reach the same value
// from the item's numbers are one answer (countdown_value), whatever their text; other items: empty
// (the normalized answer itself).
AnswerKey item_answer_key(const TaskItem& item);

// The Wilson score interval (z = 1.959964) of a proportion p measured over n trials; {0, 0} for n = 0.
std::pair<double, double> wilson_interval(double p, int n);

// Greedy, sample, best-of, vote and verify run every item's paths in batched steps (items in
// chunks, all paths of a chunk stepping together; the paths are the same as item by item, since
// path j of item i draws from Rng::derive(Rng::derive(seed, i).next_u64(), j)); beam and MCTS run
// item by item. The chosen path is the first returned (the vote winner's best path; verify's and
// MCTS's by the item's verifier). mcts_budgets, when not empty, gives each item's token budget
// (MCTS at another strategy's cost, item by item).
EvalResult evaluate(LanguageModel& lm, std::span<const TaskItem> items, std::span<const std::vector<int32_t>> prompts,
                    const Strategy& strategy, const StopOptions& stop, std::span<const int64_t> mcts_budgets = {});
// The same on a loaded model, with a KV pool sized for the strategy.
EvalResult evaluate(const Model& model, std::span<const TaskItem> items, const Strategy& strategy,
                    const StopOptions& stop, std::span<const int64_t> mcts_budgets = {});

// The greedy completion (token ids) of every item, all items in one batch.
std::vector<std::vector<int32_t>> greedy_completions(const Model& model, std::span<const TaskItem> items,
                                                     const StopOptions& stop);
// The indices of the items whose greedy completions differ between models a and b (empty: the
// same tokens for every item), e.g. the trained weights in memory and the exported GGUF read back.
std::vector<size_t> greedy_differences(const Model& a, const Model& b, std::span<const TaskItem> items,
                                       const StopOptions& stop);

}  // namespace ponder
