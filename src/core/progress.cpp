#include "core/progress.h"

#include <algorithm>
#include <cstdio>
#include <unistd.h>

namespace ponder {

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", int(s / 3600), int(s / 60) % 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", int(s / 60), int(s) % 60);
  else std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}

Progress::Progress(std::string label, int64_t total, int64_t first)
    : label_(std::move(label)), total_(total > 0 ? total : 1), first_(std::max<int64_t>(0, first)),
      tty_(::isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {
  if (first_ > 0) {
    std::fprintf(stderr, "%s: resuming from step %lld of %lld\n", label_.c_str(), (long long)first_, (long long)total_);
    last_decile_ = int(std::min(1.0, double(first_) / double(total_)) * 10);
  }
}

void Progress::update(int64_t done, const std::string& status) {
  const auto now = std::chrono::steady_clock::now();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double frac = std::min(1.0, double(done) / double(total_));
  // The rate of this run's steps (a resumed job started at first_).
  const double done_here = double(done - first_), left = double(total_ - done);
  const double eta = done_here > 0 ? elapsed * std::max(0.0, left) / done_here : 0.0;
  if (tty_) {
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    const int width = 30, filled = int(frac * width);
    std::string bar(size_t(filled), '=');
    if (filled < width) bar += '>' + std::string(size_t(width - filled - 1), ' ');
    std::fprintf(stderr, "\r%s [%s] %lld/%lld %s ETA %s  ", label_.c_str(), bar.c_str(), (long long)done,
                 (long long)total_, status.c_str(), format_duration(eta).c_str());
  } else {
    const int decile = int(frac * 10);
    if (decile == last_decile_) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s %3d%% %lld/%lld %s elapsed %s ETA %s\n", label_.c_str(), decile * 10, (long long)done,
                 (long long)total_, status.c_str(), format_duration(elapsed).c_str(), format_duration(eta).c_str());
  }
  std::fflush(stderr);
}

void Progress::finish(const std::string& status) {
  update(total_, status);
  if (tty_) std::fprintf(stderr, "\n");
}

}  // namespace ponder
