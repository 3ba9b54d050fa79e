#pragma once
// Charts as standalone SVG files (no dependencies): the training curves. A chart is a stack of
// panels sharing one x axis; each panel has its own y axis and label, so quantities of different
// units (a reward, a rate, a length) never share an axis. Ticks are round numbers (1, 2 or 5 x
// 10^k), the plotted range a little wider than the ticks so no point sits on the frame; noisy
// per-step series are drawn faint with a moving average on top (of the logs on a log axis); sparse
// series (up to 30 points: a few evaluations, or one) get markers, and up to 5 points their values.
#include <cmath>
#include <string>
#include <vector>

namespace ponder {

struct Series {
  std::string name;
  std::vector<double> x, y;
  bool smooth = false;  // per-step values: raw drawn faint, a centred moving average drawn on top
};

struct Panel {
  std::string y_label;               // what the y axis measures, e.g. "loss", "rate", "tokens"
  std::vector<Series> series;
  double y_min = NAN, y_max = NAN;   // both: a fixed range (rates: 0 and 1); one: the axis reaches it
                                     // (y_min 0 for counts: a constant 0 is drawn on 0..1, not -1..1)
  bool log_y = false;                // logarithmic y axis (positive values only)
};

struct Chart {
  std::string title, x_label;
  std::vector<Panel> panels;         // top to bottom, sharing the x axis
  double x_min = NAN, x_max = NAN;   // NaN: from the data
};

// Writes the chart; throws FormatError when the file cannot be written.
void write_svg_chart(const std::string& path, const Chart& chart);
// One panel with every series and no y label (the original form).
void write_svg_chart(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::vector<Series>& series);

// About `target` round tick values covering [lo, hi]: multiples of 1, 2 or 5 x 10^k (at least 1
// when integer_only). The first tick is <= lo and the last >= hi.
std::vector<double> nice_ticks(double lo, double hi, int target = 5, bool integer_only = false);
// Ticks of a logarithmic axis over [lo, hi] (both > 0): 1, 2, 5 x 10^k, or only 10^k over many decades.
std::vector<double> log_ticks(double lo, double hi);
// A tick's text with as many decimals as the tick spacing needs: "700", "0.2", "0.05".
std::string tick_label(double value, double spacing);
// Centred moving average over `window` points, the window shrinking at the ends.
std::vector<double> moving_average(const std::vector<double>& y, int window);
// The moving-average window used for n points of a smoothed series (1: not smoothed).
int smoothing_window(size_t n);

}  // namespace ponder
