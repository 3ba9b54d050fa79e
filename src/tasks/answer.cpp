// Answer extraction and normalization (see answer.h for the rules).
#include "tasks/answer.h"

namespace ponder {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_word(char c) { return is_digit(c) || is_alpha(c) || c == '_'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A decimal number starting at s[i]: [-+]? digits (,ddd)* (.digits)?, or [-+]? .digits.
struct Number {
  size_t end = 0;            // one past the last character
  bool negative = false;
  std::string int_digits;    // without commas; may be empty (".5")
  std::string frac_digits;   // empty when there is no fraction
};

std::optional<Number> match_number(std::string_view s, size_t i) {
  Number n;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) n.negative = s[i++] == '-';
  size_t j = i;
  while (j < s.size() && is_digit(s[j])) n.int_digits += s[j++];
  if (!n.int_digits.empty() && n.int_digits.size() <= 3) {  // thousands groups: ",ddd" not followed by a digit
    while (j + 3 < s.size() && s[j] == ',' && is_digit(s[j + 1]) && is_digit(s[j + 2]) && is_digit(s[j + 3]) &&
           (j + 4 == s.size() || !is_digit(s[j + 4]))) {
      n.int_digits.append(s.substr(j + 1, 3));
      j += 4;
    }
  }
  if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
    for (++j; j < s.size() && is_digit(s[j]); ++j) n.frac_digits += s[j];
  }
  if (n.int_digits.empty() && n.frac_digits.empty()) return std::nullopt;
  n.end = j;
  return n;
}

// The last complete <answer>...</answer> block's inner text.
std::optional<std::string_view> last_answer_block(std::string_view text) {
  constexpr std::string_view kOpen = "<answer>", kClose = "</answer>";
  size_t close = text.rfind(kClose);
  if (close == std::string_view::npos) return std::nullopt;
  size_t open = text.rfind(kOpen, close);
  if (open == std::string_view::npos) return std::nullopt;
  return text.substr(open + kOpen.size(), close - open - kOpen.size());
}

// The content of the box starting at text[pos] ("\boxed..."), trimmed; empty when unusable.
std::string_view boxed_content(std::string_view text, size_t pos) {
  size_t start = pos + std::string_view("\\boxed").size(), i = start;
  while (i < text.size() && text[i] == ' ') ++i;
  if (i < text.size() && text[i] == '{') {
    int depth = 0;
    for (size_t j = i; j < text.size(); ++j) {
      if (text[j] == '{') ++depth;
      if (text[j] == '}' && --depth == 0) return trim(text.substr(i + 1, j - i - 1));
    }
    return {};  // unclosed
  }
  if (i == start) return {};  // "\boxedfoo" is another command
  size_t j = i;
  while (j < text.size() && !is_space(text[j]) && text[j] != '$') ++j;
  return text.substr(i, j - i);
}

std::optional<std::string_view> last_boxed(std::string_view text) {
  for (size_t pos = text.rfind("\\boxed"); pos != std::string_view::npos; pos = text.rfind("\\boxed", pos - 1)) {
    std::string_view content = boxed_content(text, pos);
    if (!content.empty()) return content;
    if (pos == 0) break;
  }
  return std::nullopt;
}

std::optional<std::string> last_number(std::string_view text) {
  std::optional<std::string> last;
  size_t i = 0;
  while (i < text.size()) {
    char c = text[i];
    bool can_start = is_digit(c) || c == '-' || c == '.';
    if (!can_start || (i > 0 && (is_word(text[i - 1]) || text[i - 1] == '.'))) {
      ++i;
      continue;
    }
    std::optional<Number> n = match_number(text, i);
    if (!n) {
      ++i;
      continue;
    }
    size_t j = n->end;
    bool glued = j < text.size() && (is_alpha(text[j]) || text[j] == '_' ||
                                     (text[j] == '.' && j + 1 < text.size() && is_digit(text[j + 1])));
    if (glued) {  // part of a word, a version or scientific notation: skip the whole run
      while (j < text.size() && (is_word(text[j]) || text[j] == '.')) ++j;
    } else {
      last = (n->negative ? "-" : "") + n->int_digits + (n->frac_digits.empty() ? "" : "." + n->frac_digits);
    }
    i = j;
  }
  return last;
}

}  // namespace

std::optional<std::string> boxed_answer(std::string_view text) {
  const std::optional<std::string_view> boxed = last_boxed(text);
  return boxed ? std::optional<std::string>(std::string(*boxed)) : std::nullopt;
}

std::optional<std::string> extract_answer(std::string_view text) {
  if (std::optional<std::string_view> block = last_answer_block(text)) {
    std::optional<std::string_view> boxed = last_boxed(*block);
    std::string_view answer = trim(boxed ? *boxed : *block);
    if (answer.empty()) return std::nullopt;
    return std::string(answer);
  }
  if (std::optional<std::string_view> boxed = last_boxed(text)) return std::string(*boxed);
  return last_number(text);
}

std::string normalize_answer(std::string_view answer) {
  std::string_view s = trim(answer);
  for (bool changed = true; changed;) {  // "$42$.", " $ 3.5 $ " ...
    size_t before = s.size();
    while (!s.empty() && s.front() == '$') s.remove_prefix(1);
    while (!s.empty() && s.back() == '$') s.remove_suffix(1);
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    s = trim(s);
    changed = s.size() != before;
  }
  std::string text;
  for (char c : s)
    if (!is_space(c)) text += c;

  std::optional<Number> n = match_number(text, 0);
  if (!n || n->end != text.size()) return text;
  size_t lead = n->int_digits.find_first_not_of('0');
  std::string digits = lead == std::string::npos ? "0" : n->int_digits.substr(lead);
  size_t last_nonzero = n->frac_digits.find_last_not_of('0');
  std::string frac = last_nonzero == std::string::npos ? "" : n->frac_digits.substr(0, last_nonzero + 1);
  if (!frac.empty()) digits += "." + frac;
  return (n->negative && digits != "0") ? "-" + digits : digits;
}

}  // namespace ponder
