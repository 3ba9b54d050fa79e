// Reasoning/answer split of R1-style completions (see reasoning.h).
#include "decode/reasoning.h"

#include "tasks/answer.h"

namespace ponder {
namespace {

std::string_view trim(std::string_view s) {
  constexpr std::string_view kSpace = " \t\n\r\f\v";
  size_t b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(kSpace) - b + 1);
}

}  // namespace

ReasoningSplit split_reasoning(std::string_view text) {
  constexpr std::string_view kStart = "<think>", kEnd = "</think>";
  ReasoningSplit out;
  std::string_view reasoning = text;
  if (size_t end = text.find(kEnd); end != std::string_view::npos) {
    reasoning = text.substr(0, end);
    out.answer = trim(text.substr(end + kEnd.size()));
    out.has_end_tag = true;
  }
  reasoning = trim(reasoning);
  if (reasoning.starts_with(kStart)) reasoning.remove_prefix(kStart.size());
  out.reasoning = trim(reasoning);
  return out;
}

std::string final_answer(const ReasoningSplit& split, std::string_view text) {
  const std::optional<std::string> a = extract_answer(split.has_end_tag ? std::string_view(split.answer) : text);
  return a ? normalize_answer(*a) : "";
}

}  // namespace ponder
