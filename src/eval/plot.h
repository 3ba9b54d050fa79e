#pragma once
// Line charts as standalone SVG files (no dependencies): the training and GRPO curves.
#include <string>
#include <vector>

namespace ponder {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// Writes one chart with every series; throws FormatError when the file cannot be written.
void write_svg_chart(const std::string& path, const std::string& title, const std::string& x_label,
                     const std::vector<Series>& series);

}  // namespace ponder
