#include "eval/plot.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace ponder {

namespace {

constexpr double kWidth = 800, kLeft = 78, kRight = 220, kTop = 44, kBottom = 52, kGap = 22;
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

bool finite_point(const Series& s, size_t i) { return std::isfinite(s.x[i]) && std::isfinite(s.y[i]); }
size_t n_points(const Series& s) { return std::min(s.x.size(), s.y.size()); }
size_t n_finite(const Series& s) {
  size_t n = 0;
  for (size_t i = 0; i < n_points(s); ++i) n += finite_point(s, i);
  return n;
}

// An axis: the data range widened to round ticks.
// Points on the frame are hard to see: the plotted range reaches this fraction beyond the ticks.
constexpr double kMargin = 0.03;

struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  std::vector<double> ticks;
  double spacing = 1;  // between linear ticks (for the labels)
  double frac(double v) const {
    const double f = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    return (f + kMargin) / (1 + 2 * kMargin);
  }
};

// floor: lo is a lower bound (a rate, a count), so a constant series is not padded below it.
Axis linear_axis(double lo, double hi, bool fixed, bool integer_only, int target, bool floor = false) {
  Axis a;
  if (!(lo <= hi)) lo = 0, hi = 1;
  if (hi == lo) {  // one value: a range around it (above it from a floor)
    const double pad = integer_only ? 1 : lo != 0 ? std::fabs(lo) * 0.1 : 1;
    if (!floor) lo -= pad;
    hi += pad;
  }
  a.ticks = nice_ticks(lo, hi, target, integer_only);
  a.spacing = a.ticks.size() > 1 ? a.ticks[1] - a.ticks[0] : 1;
  if (fixed) {  // keep the given range, drop ticks outside it
    std::erase_if(a.ticks, [&](double t) { return t < lo - 1e-9 * (hi - lo) || t > hi + 1e-9 * (hi - lo); });
    a.lo = lo, a.hi = hi;
  } else {
    a.lo = a.ticks.front(), a.hi = a.ticks.back();
  }
  return a;
}

Axis y_axis(const Panel& p) {
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : p.series)
    for (size_t i = 0; i < n_points(s); ++i)
      if (finite_point(s, i) && (!p.log_y || s.y[i] > 0)) lo = std::min(lo, s.y[i]), hi = std::max(hi, s.y[i]);
  if (p.log_y && lo <= hi) {
    Axis a{.log = true};
    a.lo = std::pow(10.0, std::floor(std::log10(lo)));
    a.hi = std::pow(10.0, std::ceil(std::log10(hi)));
    if (a.hi <= a.lo) a.hi = a.lo * 10;
    a.ticks = log_ticks(a.lo, a.hi);
    return a;
  }
  const bool fixed = std::isfinite(p.y_min) && std::isfinite(p.y_max);
  if (std::isfinite(p.y_min)) lo = std::min(lo, p.y_min);
  if (std::isfinite(p.y_max)) hi = std::max(hi, p.y_max);
  if (fixed) lo = p.y_min, hi = p.y_max;
  return linear_axis(lo, hi, fixed, false, 4, std::isfinite(p.y_min) && lo == p.y_min);
}

Axis x_axis(const Chart& c) {
  double lo = INFINITY, hi = -INFINITY;
  bool integer = true;
  for (const Panel& p : c.panels)
    for (const Series& s : p.series)
      for (size_t i = 0; i < n_points(s); ++i)
        if (finite_point(s, i)) {
          lo = std::min(lo, s.x[i]), hi = std::max(hi, s.x[i]);
          integer = integer && s.x[i] == std::round(s.x[i]);
        }
  const bool fixed = std::isfinite(c.x_min) && std::isfinite(c.x_max);
  if (std::isfinite(c.x_min)) lo = c.x_min;
  if (std::isfinite(c.x_max)) hi = c.x_max;
  return linear_axis(lo, hi, fixed, integer, 6);
}

std::string axis_label(const Axis& a, double v) {
  if (!a.log) return tick_label(v, a.spacing);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// One panel: frame, grid, y ticks and label, series, legend. x ticks on the bottom panel only.
void draw_panel(std::ostringstream& o, const Panel& p, const Axis& x, double top, double height, bool bottom,
                const std::string& x_label, int index) {
  const double plot_w = kWidth - kLeft - kRight;
  const Axis y = y_axis(p);
  auto px = [&](double v) { return kLeft + x.frac(v) * plot_w; };
  auto py = [&](double v) { return top + height - y.frac(v) * height; };
  const std::string clip = "clip" + std::to_string(index);
  o << "<clipPath id=\"" << clip << "\"><rect x=\"" << fmt(kLeft) << "\" y=\"" << fmt(top - 6) << "\" width=\""
    << fmt(plot_w) << "\" height=\"" << fmt(height + 12) << "\"/></clipPath>\n";
  for (double t : y.ticks) {
    o << "<line x1=\"" << fmt(kLeft) << "\" x2=\"" << fmt(kLeft + plot_w) << "\" y1=\"" << fmt(py(t)) << "\" y2=\""
      << fmt(py(t)) << "\" stroke=\"#e4e4e4\"/>\n";
    o << "<text class=\"ytick\" x=\"" << fmt(kLeft - 6) << "\" y=\"" << fmt(py(t) + 4) << "\" text-anchor=\"end\">"
      << axis_label(y, t) << "</text>\n";
  }
  for (double t : x.ticks) {
    o << "<line x1=\"" << fmt(px(t)) << "\" x2=\"" << fmt(px(t)) << "\" y1=\"" << fmt(top) << "\" y2=\""
      << fmt(top + height) << "\" stroke=\"#f0f0f0\"/>\n";
    if (bottom)
      o << "<text class=\"xtick\" x=\"" << fmt(px(t)) << "\" y=\"" << fmt(top + height + 17)
        << "\" text-anchor=\"middle\">" << axis_label(x, t) << "</text>\n";
  }
  o << "<rect x=\"" << fmt(kLeft) << "\" y=\"" << fmt(top) << "\" width=\"" << fmt(plot_w) << "\" height=\""
    << fmt(height) << "\" fill=\"none\" stroke=\"#555\"/>\n";
  const double mid = top + height / 2;
  o << "<text class=\"ylabel\" x=\"16\" y=\"" << fmt(mid) << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
    << fmt(mid) << ")\">" << escape(p.y_label) << "</text>\n";
  if (bottom)
    o << "<text class=\"xlabel\" x=\"" << fmt(kLeft + plot_w / 2) << "\" y=\"" << fmt(top + height + 38)
      << "\" text-anchor=\"middle\">" << escape(x_label) << "</text>\n";

  double legend_y = top + 12;
  for (size_t k = 0; k < p.series.size(); ++k) {
    const Series& s = p.series[k];
    const char* color = kColors[k % 6];
    const size_t n = n_finite(s);
    std::vector<double> xs, ys;
    for (size_t i = 0; i < n_points(s); ++i)
      if (finite_point(s, i) && (!y.log || s.y[i] > 0)) xs.push_back(s.x[i]), ys.push_back(s.y[i]);
    const int window = s.smooth ? smoothing_window(xs.size()) : 1;
    const bool markers = n <= 30, values = n <= 5;
    auto polyline = [&](const std::vector<double>& v, const char* extra) {
      if (v.size() < 2) return;
      o << "<polyline clip-path=\"url(#" << clip << ")\" fill=\"none\" stroke=\"" << color << "\" " << extra
        << " points=\"";
      for (size_t i = 0; i < v.size(); ++i) o << fmt(px(xs[i])) << "," << fmt(py(v[i])) << " ";
      o << "\"/>\n";
    };
    if (window > 1) {
      polyline(ys, "stroke-width=\"1\" stroke-opacity=\"0.3\"");
      // On a log axis the mean of the logs (a geometric mean), so the line follows the points.
      std::vector<double> v = ys;
      if (y.log) std::transform(v.begin(), v.end(), v.begin(), [](double a) { return std::log(a); });
      v = moving_average(v, window);
      if (y.log) std::transform(v.begin(), v.end(), v.begin(), [](double a) { return std::exp(a); });
      polyline(v, "stroke-width=\"2\"");
    } else {
      polyline(ys, "stroke-width=\"1.6\"");
    }
    for (size_t i = 0; markers && i < xs.size(); ++i) {
      o << "<circle class=\"marker\" cx=\"" << fmt(px(xs[i])) << "\" cy=\"" << fmt(py(ys[i])) << "\" r=\"3.5\" fill=\""
        << color << "\"/>\n";
      if (!values) continue;  // a few points: their values beside them, left of the marker
      char v[32];
      std::snprintf(v, sizeof v, "%.3g", ys[i]);
      o << "<text class=\"value\" x=\"" << fmt(px(xs[i]) - 6) << "\" y=\"" << fmt(py(ys[i]) + (k % 2 ? 14 : -6))
        << "\" text-anchor=\"end\" font-size=\"11\" fill=\"" << color << "\">" << v << "</text>\n";
    }
    // Legend entry in the right margin: a line (and marker) sample, then the name.
    const double lx = kLeft + plot_w + 12;
    o << "<line x1=\"" << fmt(lx) << "\" x2=\"" << fmt(lx + 18) << "\" y1=\"" << fmt(legend_y - 4) << "\" y2=\""
      << fmt(legend_y - 4) << "\" stroke=\"" << color << "\" stroke-width=\"2\"/>\n";
    if (markers)
      o << "<circle cx=\"" << fmt(lx + 9) << "\" cy=\"" << fmt(legend_y - 4) << "\" r=\"3\" fill=\"" << color << "\"/>\n";
    o << "<text x=\"" << fmt(lx + 24) << "\" y=\"" << fmt(legend_y) << "\" fill=\"" << color << "\">" << escape(s.name)
      << "</text>\n";
    legend_y += 16;
    if (window > 1) {
      o << "<text x=\"" << fmt(lx + 24) << "\" y=\"" << fmt(legend_y) << "\" fill=\"#777\" font-size=\"10\">line: mean of "
        << window << " points</text>\n";
      legend_y += 15;
    }
  }
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target, bool integer_only) {
  if (!(lo <= hi) || !std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (hi == lo) hi = lo + 1;
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  if (integer_only) step = std::max(step, 1.0);
  const double first = std::floor(lo / step + 1e-9), last = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double k = first; k <= last; ++k) {
    const double t = k * step;
    ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  }
  if (ticks.size() < 2) ticks.push_back(ticks.back() + step);
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  const int d0 = int(std::floor(std::log10(lo) + 1e-9)), d1 = int(std::ceil(std::log10(hi) - 1e-9));
  const bool fine = d1 - d0 <= 2;
  for (int d = d0; d <= d1; ++d)
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1.0 && !fine) continue;
      const double t = m * std::pow(10.0, d);
      if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) ticks.push_back(t);
    }
  return ticks;
}

std::string tick_label(double value, double spacing) {
  const int decimals = spacing > 0 ? std::max(0, int(std::ceil(-std::log10(spacing) - 1e-9))) : 0;
  char buf[48];
  if (std::fabs(value) >= 1e6) std::snprintf(buf, sizeof buf, "%g", value);
  else std::snprintf(buf, sizeof buf, "%.*f", std::min(decimals, 8), value);
  std::string s = buf;
  if (s.find('.') != std::string::npos && s.find('e') == std::string::npos) {  // "1.0" -> "1", "0.50" -> "0.5"
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

std::vector<double> moving_average(const std::vector<double>& y, int window) {
  const int64_t n = int64_t(y.size()), half = std::max(0, window / 2);
  std::vector<double> out(y.size());
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = std::max<int64_t>(0, i - half), b = std::min(n - 1, i + half);
    double s = 0;
    for (int64_t j = a; j <= b; ++j) s += y[size_t(j)];
    out[size_t(i)] = s / double(b - a + 1);
  }
  return out;
}

int smoothing_window(size_t n) {
  if (n < 12) return 1;
  int w = int(std::lround(double(n) / 30.0));
  w = std::clamp(w, 3, 51);
  return w | 1;  // odd: centred
}

void write_svg_chart(const std::string& path, const Chart& chart) {
  const size_t n_panels = std::max<size_t>(1, chart.panels.size());
  const double panel_h = n_panels == 1 ? 300 : n_panels == 2 ? 200 : 150;
  const double height = kTop + double(n_panels) * panel_h + double(n_panels - 1) * kGap + kBottom;
  const Axis x = x_axis(chart);
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << height
    << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  o << "<text class=\"title\" x=\"" << fmt((kLeft + kWidth - kRight) / 2) << "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">"
    << escape(chart.title) << "</text>\n";
  const std::vector<Panel> panels = chart.panels.empty() ? std::vector<Panel>{Panel{}} : chart.panels;
  for (size_t i = 0; i < panels.size(); ++i) {
    const double top = kTop + double(i) * (panel_h + kGap);
    draw_panel(o, panels[i], x, top, panel_h, i + 1 == panels.size(), chart.x_label, int(i));
  }
  o << "</svg>\n";
  std::ofstream f(path);
  if (!(f << o.str())) throw FormatError(path + ": cannot write the chart");
}

void write_svg_chart(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::vector<Series>& series) {
  write_svg_chart(path, Chart{.title = title, .x_label = x_label, .panels = {Panel{.y_label = "", .series = series}}});
}

}  // namespace ponder
