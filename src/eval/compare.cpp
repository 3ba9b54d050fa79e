#include "eval/compare.h"

#include <cstdio>

#include "core/error.h"
#include "eval/plot.h"

namespace ponder {

std::vector<StrategyRow> compare_strategies(const Model& model, std::span<const TaskItem> items,
                                            std::span<const StrategySpec> specs, const StopOptions& stop,
                                            const std::function<void(const StrategyRow&)>& on_row) {
  std::vector<StrategyRow> rows;
  for (const StrategySpec& spec : specs) {
    std::vector<int64_t> budgets;
    if (!spec.budget_from.empty()) {
      const auto it = std::find_if(rows.begin(), rows.end(), [&](const StrategyRow& r) { return r.spec.name == spec.budget_from; });
      if (it == rows.end()) throw InvalidArgument("strategy '" + spec.name + "': no earlier row '" + spec.budget_from + "'");
      for (const ItemOutcome& o : it->result.items) budgets.push_back(o.tokens);
    }
    rows.push_back({spec, evaluate(model, items, spec.strategy, stop, budgets)});
    if (on_row) on_row(rows.back());
  }
  return rows;
}

nlohmann::json row_json(const StrategyRow& row) {
  const EvalResult& e = row.result;
  nlohmann::json answers = nlohmann::json::array(), correct = nlohmann::json::array(), tokens = nlohmann::json::array();
  for (const ItemOutcome& o : e.items) {
    answers.push_back(o.answer);
    correct.push_back(o.correct);
    tokens.push_back(o.tokens);
  }
  nlohmann::json j = {{"name", row.spec.name}, {"strategy", strategy_name(row.spec.strategy)},
                      {"accuracy", e.accuracy}, {"ci95", {e.ci_low, e.ci_high}}, {"format_rate", e.format_rate},
                      {"tokens_per_problem", e.tokens_per_problem}, {"chosen_tokens", e.mean_tokens},
                      {"seconds_per_problem", e.seconds_per_problem}, {"answers", answers}, {"correct", correct},
                      {"tokens", tokens}};
  if (!row.spec.budget_from.empty()) j["budget_from"] = row.spec.budget_from;
  return j;
}

std::string table_header() {
  char line[160];
  std::snprintf(line, sizeof line, "%-14s %8s %15s %7s %14s %12s", "strategy", "accuracy", "95% interval", "format",
                "tokens/problem", "s/problem");
  return line;
}

std::string table_line(const StrategyRow& row) {
  const EvalResult& e = row.result;
  char line[200], ci[40];
  std::snprintf(ci, sizeof ci, "%.3f-%.3f", e.ci_low, e.ci_high);
  std::snprintf(line, sizeof line, "%-14s %8.3f %15s %7.3f %14.1f %12.4f", row.spec.name.c_str(), e.accuracy, ci,
                e.format_rate, e.tokens_per_problem, e.seconds_per_problem);
  return line;
}

std::string seconds_plot_path(const std::string& path) {
  const std::string ext = ".svg";
  if (path.size() > ext.size() && path.compare(path.size() - ext.size(), ext.size(), ext) == 0)
    return path.substr(0, path.size() - ext.size()) + "-seconds.svg";
  return path + "-seconds.svg";
}

void write_tradeoff_plots(const std::string& path, std::span<const StrategyRow> rows, const std::string& title) {
  for (int seconds = 0; seconds < 2; ++seconds) {
    Panel accuracy{.y_label = "accuracy", .series = {}, .y_min = 0, .y_max = 1};
    for (const StrategyRow& r : rows)
      accuracy.series.push_back({.name = r.spec.name,
                                 .x = {seconds ? r.result.seconds_per_problem : r.result.tokens_per_problem},
                                 .y = {r.result.accuracy}});
    const Chart chart{.title = title, .x_label = seconds ? "seconds per problem" : "tokens generated per problem (every path)",
                      .panels = {accuracy}, .x_min = 0};
    write_svg_chart(seconds ? seconds_plot_path(path) : path, chart);
  }
}

}  // namespace ponder
