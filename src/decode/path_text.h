#pragma once
// A path's text as it grows: stop strings and the thinking budget are decided here, token by
// token, for every strategy.
#include <cstdint>
#include <string>
#include <vector>

#include "decode/options.h"

namespace ponder {

class PathText {
 public:
  PathText() : stop_(&no_stop()) {}
  explicit PathText(const StopOptions& stop) : stop_(&stop) {}

  // Appends a token's bytes; true when a stop string is now complete (the text is then cut
  // before it).
  bool append(const std::string& piece);
  const std::string& text() const { return text_; }

  // Thinking budget: call before choosing each token. True, once, when "</think>" should be
  // forced now: think_budget reasoning tokens have been appended (none for a budget of 0) and the
  // reasoning is still open.
  bool think_budget_spent();
  bool reasoning_open() const { return !think_closed_; }

 private:
  static const StopOptions& no_stop() {
    static const StopOptions none;
    return none;
  }
  const StopOptions* stop_;
  std::string text_;
  bool think_closed_ = false;
  bool forced_ = false;
  int reasoning_tokens_ = 0;
};

// The text forced when the thinking budget is spent.
inline constexpr const char* kForcedThinkEnd = "\n</think>\n\n";

}  // namespace ponder
