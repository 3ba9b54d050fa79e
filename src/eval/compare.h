#pragma once
// Every strategy of a list on the same items (`ponder eval`, the demo): a row per strategy, the
// JSON with every problem's chosen answer per strategy, a printed table and the trade-off plots.
#include <functional>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "eval/evaluate.h"
#include "eval/strategy_spec.h"

namespace ponder {

struct StrategyRow {
  StrategySpec spec;
  EvalResult result;
};

// Evaluates each strategy in list order on the same items; an MCTS item with budget_from gets, on
// each problem, the tokens that strategy generated there. on_row (optional) sees each row as it ends.
std::vector<StrategyRow> compare_strategies(const Model& model, std::span<const TaskItem> items,
                                            std::span<const StrategySpec> specs, const StopOptions& stop,
                                            const std::function<void(const StrategyRow&)>& on_row = {});

// {"name", "accuracy", "ci95": [lo, hi], "format_rate", "tokens_per_problem", "chosen_tokens",
//  "seconds_per_problem", "answers": [...], "correct": [...], "tokens": [...]}
nlohmann::json row_json(const StrategyRow& row);
// The table's header and one line per row, as printed.
std::string table_header();
std::string table_line(const StrategyRow& row);
// Accuracy (with its 95% interval) against tokens per problem, one point per strategy, to path;
// and against seconds per problem to the same path with "-seconds" before ".svg".
void write_tradeoff_plots(const std::string& path, std::span<const StrategyRow> rows, const std::string& title);
std::string seconds_plot_path(const std::string& path);

}  // namespace ponder
