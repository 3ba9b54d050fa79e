#include "eval/training_plots.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/plot.h"

namespace ponder {

namespace {

using Rows = std::vector<nlohmann::json>;

Rows read_metrics(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw FormatError(path + ": cannot open the metrics file");
  Rows rows;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw FormatError(path + ":" + std::to_string(line_no) + ": expected a JSON object per line");
    rows.push_back(std::move(j));
  }
  return rows;
}

// (step, key) of every row that has both as numbers.
Series column(const Rows& rows, const std::string& key, const std::string& name, bool smooth) {
  Series s{.name = name, .x = {}, .y = {}, .smooth = smooth};
  for (const auto& j : rows) {
    const auto step = j.find("step"), v = j.find(key);
    if (step == j.end() || v == j.end() || !step->is_number() || !v->is_number()) continue;
    s.x.push_back(step->get<double>());
    s.y.push_back(v->get<double>());
  }
  return s;
}

// Only the series that have points.
std::vector<Series> present(std::vector<Series> series) {
  std::erase_if(series, [](const Series& s) { return s.x.empty(); });
  return series;
}

double last_step(const Rows& rows) {
  double last = 0;
  for (const auto& j : rows)
    if (j.contains("step") && j["step"].is_number()) last = std::max(last, j["step"].get<double>());
  return last;
}

Panel rate_panel(std::vector<Series> series) {
  return Panel{.y_label = "rate", .series = present(std::move(series)), .y_min = 0, .y_max = 1};
}

}  // namespace

void write_grpo_plots(const std::string& out_dir) {
  const Rows rows = read_metrics(out_dir + "/metrics.jsonl");
  const double x1 = last_step(rows);
  auto chart = [&](const std::string& title, std::vector<Panel> panels) {
    std::erase_if(panels, [](const Panel& p) { return p.series.empty(); });
    return Chart{.title = title, .x_label = "step", .panels = std::move(panels), .x_min = 0, .x_max = std::max(1.0, x1)};
  };
  write_svg_chart(out_dir + "/grpo_reward.svg",
                  chart("GRPO: rollout reward and rates",
                        {Panel{.y_label = "mean reward",
                               .series = present({column(rows, "reward_mean", "reward", true)})},
                         rate_panel({column(rows, "accuracy", "accuracy", true), column(rows, "format_rate", "format", true),
                                     column(rows, "eval_accuracy", "held-out accuracy", false),
                                     column(rows, "eval_format", "held-out format", false)})}));
  write_svg_chart(out_dir + "/grpo_length.svg",
                  chart("GRPO: mean completion length",
                        {Panel{.y_label = "tokens", .series = present({column(rows, "completion_length", "completion", true)})}}));
  write_svg_chart(out_dir + "/grpo_train.svg",
                  chart("GRPO: loss, KL, clipping and gradient norm",
                        {Panel{.y_label = "loss", .series = present({column(rows, "loss", "loss", true)})},
                         Panel{.y_label = "KL", .series = present({column(rows, "kl", "KL to the reference", true)}), .y_min = 0},
                         Panel{.y_label = "clip fraction",
                               .series = present({column(rows, "clip_fraction", "clipped tokens", true)}), .y_min = 0},
                         Panel{.y_label = "gradient norm",
                               .series = present({column(rows, "grad_norm", "before clipping", true)}), .y_min = 0}}));
  write_svg_chart(out_dir + "/grpo_time.svg",
                  chart("GRPO: time per step and groups",
                        {Panel{.y_label = "seconds", .series = present({column(rows, "rollout_seconds", "rollouts", true),
                                                                        column(rows, "train_seconds", "training", true)}),
                               .y_min = 0},
                         Panel{.y_label = "groups", .series = present({column(rows, "groups_used", "used", true),
                                                                       column(rows, "groups_generated", "generated", true)}),
                               .y_min = 0}}));
}

void write_sft_plots(const std::string& out_dir) {
  const Rows rows = read_metrics(out_dir + "/metrics.jsonl");
  const double x1 = std::max(1.0, last_step(rows));
  std::vector<Panel> panels = {
      Panel{.y_label = "loss (cross-entropy)", .series = present({column(rows, "loss", "train loss", true)}), .log_y = true},
      Panel{.y_label = "learning rate", .series = present({column(rows, "lr", "learning rate", false)}), .y_min = 0}};
  std::erase_if(panels, [](const Panel& p) { return p.series.empty(); });
  write_svg_chart(out_dir + "/sft_loss.svg",
                  Chart{.title = "SFT: training loss", .x_label = "step", .panels = panels, .x_min = 0, .x_max = x1});
  const Panel eval = rate_panel({column(rows, "eval_accuracy", "held-out greedy accuracy", false),
                                 column(rows, "eval_format", "held-out format rate", false)});
  if (!eval.series.empty())
    write_svg_chart(out_dir + "/sft_eval.svg",
                    Chart{.title = "SFT: held-out evaluation", .x_label = "step", .panels = {eval}, .x_min = 0, .x_max = x1});
}

}  // namespace ponder
