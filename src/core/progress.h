#pragma once
// A progress bar with ETA on stderr for long jobs: redrawn in place on a terminal (at most 5
// times a second), or a line every 10% when stderr is a file or pipe (CI logs stay short).
#include <chrono>
#include <cstdint>
#include <string>

namespace ponder {

class Progress {
 public:
  // first > 0: a resumed job; prints "LABEL: resuming from step FIRST of TOTAL", the bar starts
  // at first and the ETA counts only the steps done since.
  Progress(std::string label, int64_t total, int64_t first = 0);
  // Advance to `done` of total; `status` is shown after the bar (e.g. "loss 1.23").
  void update(int64_t done, const std::string& status = "");
  void finish(const std::string& status = "");

 private:
  std::string label_;
  int64_t total_, first_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"

}  // namespace ponder
