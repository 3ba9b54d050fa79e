// Charts and the training plots: round ticks, labelled y axes, rates apart from rewards, smoothed
// noisy series, and single points drawn as markers (the SVG text is read back here).
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <regex>

#include "core/error.h"
#include "eval/plot.h"
#include "eval/training_plots.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The texts of <text class="CLASS" ...>TEXT</text> elements, in order.
std::vector<std::string> texts(const std::string& svg, const std::string& cls) {
  std::vector<std::string> out;
  const std::regex re("<text class=\"" + cls + "\"[^>]*>([^<]*)</text>");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1]);
  return out;
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

std::string fresh_dir(const std::string& name) {
  const std::string d = temp_path("plots_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(Plot, TicksAreRoundNumbers) {
  EXPECT_EQ(nice_ticks(0, 700, 6, true), (std::vector<double>{0, 100, 200, 300, 400, 500, 600, 700}));
  EXPECT_EQ(nice_ticks(0.13, 0.91, 4), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  EXPECT_EQ(nice_ticks(700, 701, 6, true), (std::vector<double>{700, 701}));
  EXPECT_EQ(log_ticks(0.01, 10), (std::vector<double>{0.01, 0.1, 1, 10}));
  EXPECT_EQ(log_ticks(0.1, 10), (std::vector<double>{0.1, 0.2, 0.5, 1, 2, 5, 10}));
  EXPECT_EQ(tick_label(700, 100), "700");
  EXPECT_EQ(tick_label(0.6000000000000001, 0.2), "0.6");
  EXPECT_EQ(tick_label(0.05, 0.05), "0.05");
  EXPECT_EQ(tick_label(-1e-17, 0.2), "0");
  EXPECT_EQ(moving_average({1, 2, 3, 10, 5}, 3), (std::vector<double>{1.5, 2, 5, 6, 7.5}));
}

TEST(Plot, SinglePointIsAMarkerWithRoundTicks) {
  const std::string path = temp_path("single_point.svg");
  write_svg_chart(path, Chart{.title = "one evaluation", .x_label = "step",
                              .panels = {Panel{.y_label = "rate", .series = {Series{.name = "acc", .x = {700}, .y = {0.92}}},
                                               .y_min = 0, .y_max = 1}}});
  const std::string svg = slurp(path);
  EXPECT_EQ(count(svg, "class=\"marker\""), 1u) << svg;
  const auto xt = texts(svg, "xtick");
  EXPECT_EQ(xt, (std::vector<std::string>{"699", "700", "701"}));
  EXPECT_EQ(texts(svg, "ytick"), (std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1"}));
  EXPECT_EQ(texts(svg, "ylabel"), (std::vector<std::string>{"rate"}));
}

TEST(Plot, AConstantSeriesStaysAboveItsFloor) {
  const std::string path = temp_path("constant.svg");
  write_svg_chart(path, Chart{.title = "KL", .x_label = "step",
                              .panels = {Panel{.y_label = "KL", .series = {Series{.name = "kl", .x = {1, 2, 3}, .y = {0, 0, 0}}},
                                               .y_min = 0}}});
  const auto yt = texts(slurp(path), "ytick");
  ASSERT_FALSE(yt.empty());
  EXPECT_EQ(yt.front(), "0") << "no negative ticks for a quantity that cannot be negative";
  EXPECT_EQ(yt.back(), "1");
}

TEST(Plot, NoisySeriesGetsASmoothedLine) {
  Series s{.name = "loss", .x = {}, .y = {}, .smooth = true};
  for (int i = 1; i <= 300; ++i) s.x.push_back(i), s.y.push_back(2.0 / i + (i % 2 ? 0.3 : -0.1));
  const std::string path = temp_path("smooth.svg");
  write_svg_chart(path, Chart{.title = "t", .x_label = "step", .panels = {Panel{.y_label = "loss", .series = {s}}}});
  const std::string svg = slurp(path);
  EXPECT_EQ(count(svg, "<polyline"), 2u) << "raw and smoothed";
  EXPECT_EQ(count(svg, "stroke-opacity=\"0.3\""), 1u) << "the raw line is faint";
  EXPECT_NE(svg.find("mean of 11 points"), std::string::npos) << "the legend names the window";
  EXPECT_EQ(count(svg, "class=\"marker\""), 0u) << "no markers on 300 points";
}

TEST(TrainingPlots, GrpoRatesAndRewardsOnSeparateAxes) {
  const std::string dir = fresh_dir("grpo");
  {
    std::ofstream m(dir + "/metrics.jsonl");
    for (int s = 1; s <= 40; ++s)
      m << "{\"step\":" << s << ",\"reward_mean\":" << 0.5 + 0.01 * s << ",\"reward_std\":0.2,\"accuracy\":"
        << 0.4 + 0.01 * s << ",\"format_rate\":0.9,\"completion_length\":" << 30 + s % 3
        << ",\"loss\":0.01,\"kl\":0.001,\"clip_fraction\":0.02,\"grad_norm\":0.5,\"rollout_seconds\":0.8,"
           "\"train_seconds\":0.3,\"groups_used\":16,\"groups_generated\":16}\n";
    m << "{\"step\":40,\"eval_accuracy\":0.9,\"eval_format\":1.0}\n";
  }
  write_grpo_plots(dir);
  for (const char* f : {"grpo_reward.svg", "grpo_length.svg", "grpo_train.svg", "grpo_time.svg"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  const std::string svg = slurp(dir + "/grpo_reward.svg");
  EXPECT_EQ(texts(svg, "ylabel"), (std::vector<std::string>{"mean reward", "rate"}));
  EXPECT_EQ(texts(svg, "xtick"), (std::vector<std::string>{"0", "5", "10", "15", "20", "25", "30", "35", "40"}));
  EXPECT_EQ(count(svg, "class=\"marker\""), 2u) << "the held-out accuracy and format: one point each";
  EXPECT_EQ(texts(slurp(dir + "/grpo_train.svg"), "ylabel"),
            (std::vector<std::string>{"loss", "KL", "clip fraction", "gradient norm"}));
}

TEST(TrainingPlots, SftEvalAtTheLastStepIsDrawn) {
  const std::string dir = fresh_dir("sft");
  {
    std::ofstream m(dir + "/metrics.jsonl");
    for (int s = 1; s <= 700; ++s) m << "{\"step\":" << s << ",\"loss\":" << 3.0 / s << ",\"lr\":0.003,\"grad_norm\":1}\n";
    m << "{\"step\":700,\"eval_accuracy\":0.92,\"eval_format\":1.0,\"eval_mean_tokens\":30}\n";
  }
  write_sft_plots(dir);
  const std::string eval = slurp(dir + "/sft_eval.svg");
  EXPECT_EQ(count(eval, "class=\"marker\""), 2u);
  EXPECT_EQ(texts(eval, "xtick"), (std::vector<std::string>{"0", "100", "200", "300", "400", "500", "600", "700"}));
  const std::string loss = slurp(dir + "/sft_loss.svg");
  EXPECT_EQ(texts(loss, "ylabel"), (std::vector<std::string>{"loss (cross-entropy)", "learning rate"}));
  const auto yt = texts(loss, "ytick");
  ASSERT_FALSE(yt.empty());
  EXPECT_EQ(yt.front(), "0.001") << "log axis from the decade below the smallest loss (3/700)";
  EXPECT_EQ(count(loss, "stroke-opacity=\"0.3\""), 1u) << "raw loss faint beside its moving average";
}

TEST(TrainingPlots, MissingOrBadMetricsAreClearErrors) {
  const std::string dir = fresh_dir("bad");
  EXPECT_THROW(write_sft_plots(dir), FormatError);
  std::ofstream(dir + "/metrics.jsonl") << "{\"step\":1,\"loss\":2}\nnot json\n";
  try {
    write_sft_plots(dir);
    FAIL();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ponder
