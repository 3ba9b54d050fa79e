#include "decode/path_text.h"

#include <algorithm>

namespace ponder {

bool PathText::append(const std::string& piece) {
  const size_t old_len = text_.size();
  if (!think_closed_) ++reasoning_tokens_;  // a token of reasoning (or the one that closes it)
  text_ += piece;
  if (!think_closed_) think_closed_ = text_.find("</think>", old_len >= 8 ? old_len - 8 : 0) != std::string::npos;
  size_t cut = std::string::npos;
  for (const std::string& s : stop_->stop) {
    if (s.empty()) continue;
    // Only a match that ends in the new bytes is new.
    const size_t from = old_len >= s.size() ? old_len - s.size() + 1 : 0;
    const size_t at = text_.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut == std::string::npos) return false;
  text_.resize(cut);
  return true;
}

bool PathText::think_budget_spent() {
  if (stop_->think_budget < 0 || think_closed_ || forced_) return false;
  if (reasoning_tokens_ < stop_->think_budget) return false;
  forced_ = true;
  return true;
}

}  // namespace ponder
