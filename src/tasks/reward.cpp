// Rule-based rewards and the countdown verifier (rules in reward.h).
#include "tasks/reward.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <optional>

#include "core/error.h"
#include "tasks/answer.h"

namespace ponder {
namespace {

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kAnswerOpen = "<answer>", kAnswerClose = "</answer>";

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool has_any_tag(std::string_view s) {
  for (std::string_view tag : {kThinkOpen, kThinkClose, kAnswerOpen, kAnswerClose})
    if (s.find(tag) != std::string_view::npos) return true;
  return false;
}

// ---- exact arithmetic for the countdown verifier ----

struct Rational {
  int64_t num = 0;
  int64_t den = 1;  // > 0, gcd(num, den) == 1
};

std::optional<Rational> make_rational(int64_t num, int64_t den) {
  if (den == 0 || num == INT64_MIN || den == INT64_MIN) return std::nullopt;
  if (den < 0) num = -num, den = -den;
  const int64_t g = std::gcd(num, den);
  return Rational{num / g, den / g};
}

std::optional<Rational> apply(char op, Rational a, Rational b, CountdownDivision division) {
  int64_t x = 0, y = 0, num = 0, den = 0;
  switch (op) {
    case '+':
    case '-':
      if (__builtin_mul_overflow(a.num, b.den, &x) || __builtin_mul_overflow(b.num, a.den, &y) ||
          __builtin_mul_overflow(a.den, b.den, &den))
        return std::nullopt;
      if (op == '+' ? __builtin_add_overflow(x, y, &num) : __builtin_sub_overflow(x, y, &num)) return std::nullopt;
      return make_rational(num, den);
    case '*':
      if (__builtin_mul_overflow(a.num, b.num, &num) || __builtin_mul_overflow(a.den, b.den, &den)) return std::nullopt;
      return make_rational(num, den);
    default:  // '/'
      if (b.num == 0) return std::nullopt;
      if (division == CountdownDivision::Exact && (a.den != 1 || b.den != 1 || a.num % b.num != 0)) return std::nullopt;
      if (__builtin_mul_overflow(a.num, b.den, &num) || __builtin_mul_overflow(a.den, b.num, &den)) return std::nullopt;
      return make_rational(num, den);
  }
}

// Recursive descent over the grammar in reward.h; every function skips leading whitespace.
struct ExpressionParser {
  std::string_view s;
  CountdownDivision division;
  size_t pos = 0;
  int depth = 0;
  std::vector<int64_t> numbers;  // the literals, in order

  static constexpr int kMaxDepth = 100;

  char peek() {
    while (pos < s.size() && is_space(s[pos])) ++pos;
    return pos < s.size() ? s[pos] : '\0';
  }

  std::optional<Rational> expr() {
    std::optional<Rational> v = term();
    for (char op = peek(); v && (op == '+' || op == '-'); op = peek()) {
      ++pos;
      std::optional<Rational> rhs = term();
      v = rhs ? apply(op, *v, *rhs, division) : std::nullopt;
    }
    return v;
  }

  std::optional<Rational> term() {
    std::optional<Rational> v = unary();
    for (char op = peek(); v && (op == '*' || op == '/'); op = peek()) {
      ++pos;
      std::optional<Rational> rhs = unary();
      v = rhs ? apply(op, *v, *rhs, division) : std::nullopt;
    }
    return v;
  }

  std::optional<Rational> unary() {
    if (++depth > kMaxDepth) return std::nullopt;
    std::optional<Rational> v;
    const char c = peek();
    if (c == '+' || c == '-') {
      ++pos;
      v = unary();
      if (v && c == '-') v = apply('-', Rational{}, *v, division);
    } else {
      v = primary();
    }
    --depth;
    return v;
  }

  std::optional<Rational> primary() {
    const char c = peek();
    if (c == '(') {
      ++pos;
      std::optional<Rational> v = expr();
      if (!v || peek() != ')') return std::nullopt;
      ++pos;
      return v;
    }
    if (!is_digit(c)) return std::nullopt;
    const size_t start = pos;
    while (pos < s.size() && is_digit(s[pos])) ++pos;
    const std::string_view digits = s.substr(start, pos - start);
    if (digits.size() > 18 || (digits.size() > 1 && digits[0] == '0')) return std::nullopt;
    const int64_t value = std::strtoll(std::string(digits).c_str(), nullptr, 10);
    numbers.push_back(value);
    return Rational{value, 1};
  }
};

bool has_answer_block(std::string_view completion) {
  const size_t close = completion.rfind(kAnswerClose);
  return close != std::string_view::npos && completion.rfind(kAnswerOpen, close) != std::string_view::npos;
}

// Boxed style: the text after the first "</think>", nullopt without one.
std::optional<std::string_view> after_think(std::string_view completion) {
  const size_t end = completion.find(kThinkClose);
  if (end == std::string_view::npos) return std::nullopt;
  return completion.substr(end + kThinkClose.size());
}

// The completion has a place for its answer, even one that does not parse: a complete <answer>
// block (Tags), a "\boxed" after "</think>" (Boxed).
bool has_answer_slot(std::string_view completion, AnswerStyle style) {
  if (style == AnswerStyle::Tags) return has_answer_block(completion);
  const std::optional<std::string_view> rest = after_think(completion);
  return rest && rest->find("\\boxed") != std::string_view::npos;
}

// The answer the completion gives in the item's style, nullopt when it gives none: the last
// <answer> block (Tags), or the last \boxed{} after "</think>" (Boxed).
std::optional<std::string> given_answer(std::string_view completion, AnswerStyle style) {
  if (style == AnswerStyle::Tags) return has_answer_block(completion) ? extract_answer(completion) : std::nullopt;
  const std::optional<std::string_view> rest = after_think(completion);
  return rest ? boxed_answer(*rest) : std::nullopt;
}

bool is_correct(std::string_view answer, const TaskItem& item, CountdownDivision division) {
  if (item.check == AnswerCheck::Countdown) return check_countdown(answer, item.numbers, item.target, division);
  return normalize_answer(answer) == normalize_answer(item.answer);
}

float term_value(RewardKind kind, const RewardSpec& spec, std::string_view completion, int completion_tokens,
                 const TaskItem& item) {
  switch (kind) {
    case RewardKind::Accuracy: return accuracy_reward(completion, item, spec.countdown_division);
    case RewardKind::Format: return format_reward(completion, item.style);
    case RewardKind::TinyZero: return tinyzero_reward(completion, item, spec.countdown_division);
    case RewardKind::Overlong: return overlong_penalty(completion_tokens, spec.max_len, spec.cache_len);
  }
  return 0;
}

constexpr RewardKind kKinds[] = {RewardKind::Accuracy, RewardKind::Format, RewardKind::TinyZero, RewardKind::Overlong};

}  // namespace

std::optional<int64_t> countdown_value(std::string_view expression, std::span<const int> numbers,
                                       CountdownDivision division) {
  ExpressionParser p{.s = expression, .division = division};
  const std::optional<Rational> value = p.expr();
  p.peek();  // skips trailing whitespace
  if (!value || p.pos != expression.size() || value->den != 1) return std::nullopt;
  std::vector<int64_t> given(numbers.begin(), numbers.end());
  std::sort(given.begin(), given.end());
  std::sort(p.numbers.begin(), p.numbers.end());
  if (given != p.numbers) return std::nullopt;
  return value->num;
}

bool check_countdown(std::string_view expression, std::span<const int> numbers, int64_t target,
                     CountdownDivision division) {
  const std::optional<int64_t> value = countdown_value(expression, numbers, division);
  return value && *value == target;
}

float accuracy_reward(std::string_view completion, const TaskItem& item, CountdownDivision division) {
  const std::optional<std::string> answer = given_answer(completion, item.style);
  return answer && is_correct(*answer, item, division) ? 1.0f : 0.0f;
}

float format_reward(std::string_view completion, AnswerStyle style) {
  if (style == AnswerStyle::Boxed) {
    const std::optional<std::string_view> rest = after_think(completion);
    if (!rest || has_any_tag(completion.substr(0, completion.size() - rest->size() - kThinkClose.size())) ||
        has_any_tag(*rest))
      return 0;
    return boxed_answer(*rest) ? 1.0f : 0.0f;
  }
  const size_t think_end = completion.find(kThinkClose);
  if (think_end == std::string_view::npos || has_any_tag(completion.substr(0, think_end))) return 0;
  std::string_view rest = completion.substr(think_end + kThinkClose.size());
  while (!rest.empty() && is_space(rest.front())) rest.remove_prefix(1);
  if (!rest.starts_with(kAnswerOpen)) return 0;
  rest.remove_prefix(kAnswerOpen.size());
  const size_t answer_end = rest.find(kAnswerClose);
  if (answer_end == std::string_view::npos) return 0;
  const std::string_view answer = rest.substr(0, answer_end);
  if (has_any_tag(answer) || trim(answer).empty()) return 0;
  return trim(rest.substr(answer_end + kAnswerClose.size())).empty() ? 1.0f : 0.0f;
}

float tinyzero_reward(std::string_view completion, const TaskItem& item, CountdownDivision division) {
  if (!has_answer_slot(completion, item.style)) return 0;
  return accuracy_reward(completion, item, division) == 1.0f ? 1.0f : 0.1f;
}

float overlong_penalty(int completion_tokens, int max_len, int cache_len) {
  const int expected = max_len - cache_len;
  if (completion_tokens <= expected) return 0;
  if (completion_tokens > max_len) return -1;
  return float(expected - completion_tokens) / float(cache_len);  // cache_len > 0 here
}

std::string_view reward_name(RewardKind kind) {
  switch (kind) {
    case RewardKind::Accuracy: return "accuracy";
    case RewardKind::Format: return "format";
    case RewardKind::TinyZero: return "tinyzero";
    case RewardKind::Overlong: return "overlong";
  }
  return "?";
}

void validate_reward_spec(const RewardSpec& spec) {
  if (spec.terms.empty()) throw InvalidArgument("reward spec: no terms (expected e.g. accuracy:1,format:0.5)");
  for (size_t i = 0; i < spec.terms.size(); ++i) {
    const auto& [kind, weight] = spec.terms[i];
    if (!std::isfinite(weight))
      throw InvalidArgument("reward spec: the weight of '" + std::string(reward_name(kind)) + "' is not finite");
    for (size_t j = 0; j < i; ++j)
      if (spec.terms[j].first == kind)
        throw InvalidArgument("reward spec: '" + std::string(reward_name(kind)) + "' appears more than once");
    if (kind == RewardKind::Overlong && (spec.max_len <= 0 || spec.cache_len < 0 || spec.cache_len > spec.max_len))
      throw InvalidArgument("reward spec: 'overlong' needs max_len > 0 and 0 <= cache_len <= max_len, got max_len " +
                            std::to_string(spec.max_len) + ", cache_len " + std::to_string(spec.cache_len));
  }
}

RewardSpec parse_reward_spec(std::string_view text, int max_len, int cache_len) {
  RewardSpec spec{.max_len = max_len, .cache_len = cache_len};
  std::string known;
  for (RewardKind k : kKinds) known += std::string(known.empty() ? "" : ", ") + std::string(reward_name(k));
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view item = trim(text.substr(start, comma - start));
    start = comma + 1;
    if (item.empty()) throw InvalidArgument("reward spec '" + std::string(text) + "': empty term");
    const size_t colon = item.find(':');
    const std::string_view name = trim(item.substr(0, colon));
    float weight = 1;
    if (colon != std::string_view::npos) {
      const std::string w(trim(item.substr(colon + 1)));
      char* end = nullptr;
      const double v = w.empty() ? 0 : std::strtod(w.c_str(), &end);
      if (w.empty() || end != w.c_str() + w.size() || !std::isfinite(float(v)))
        throw InvalidArgument("reward spec: weight of '" + std::string(name) + "' must be a finite number, got '" + w +
                              "'");
      weight = float(v);
    }
    const RewardKind* kind = std::find_if(std::begin(kKinds), std::end(kKinds),
                                          [&](RewardKind k) { return reward_name(k) == name; });
    if (kind == std::end(kKinds))
      throw InvalidArgument("reward spec: unknown reward '" + std::string(name) + "', expected one of " + known);
    spec.terms.emplace_back(*kind, weight);
  }
  validate_reward_spec(spec);
  return spec;
}

RewardBreakdown compute_rewards(const RewardSpec& spec, std::string_view completion, int completion_tokens,
                                const TaskItem& item) {
  validate_reward_spec(spec);
  RewardBreakdown out;
  out.values.reserve(spec.terms.size());
  for (const auto& [kind, weight] : spec.terms) {
    out.values.push_back(term_value(kind, spec, completion, completion_tokens, item));
    out.total += weight * out.values.back();
  }
  return out;
}

float total_reward(const RewardSpec& spec, std::string_view completion, int completion_tokens, const TaskItem& item) {
  return compute_rewards(spec, completion, completion_tokens, item).total;
}

}  // namespace ponder
