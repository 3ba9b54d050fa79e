#include "eval/strategy_spec.h"

#include <algorithm>
#include <charconv>

#include "core/error.h"

namespace ponder {

namespace {

std::string trim(std::string_view s) {
  const size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string_view::npos ? std::string() : std::string(s.substr(a, b - a + 1));
}

int64_t parse_count(std::string_view item, std::string_view text, int64_t lo, int64_t hi) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
    throw InvalidArgument("--strategies item '" + std::string(item) + "': expected a count in [" + std::to_string(lo) +
                          ", " + std::to_string(hi) + "] after ':', got '" + std::string(text) + "'");
  return v;
}

}  // namespace

std::vector<StrategySpec> parse_strategy_specs(std::string_view text, const SpecDefaults& d) {
  std::vector<StrategySpec> out;
  const std::string expected = "greedy, beam:K, sample:N, best-of:N, vote:N, verify:N or mcts:BUDGET";
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string item = trim(text.substr(at, comma - at));
    at = comma + 1;
    if (item.empty()) throw InvalidArgument("--strategies '" + std::string(text) + "': an empty item; expected " + expected);
    const size_t colon = item.find(':');
    const std::string name = item.substr(0, colon);
    const bool has_arg = colon != std::string::npos;
    const std::string arg = has_arg ? item.substr(colon + 1) : "";
    auto count = [&](int64_t lo, int64_t hi) {
      if (!has_arg) throw InvalidArgument("--strategies item '" + item + "': " + name + " needs a count (" + name + ":N)");
      return parse_count(item, arg, lo, hi);
    };
    StrategySpec s{.name = item};
    if (name == "greedy") {
      if (has_arg) throw InvalidArgument("--strategies item '" + item + "': greedy takes no count");
      s.strategy = GreedyOptions{};
    } else if (name == "beam") {
      s.strategy = BeamOptions{.num_beams = int(count(1, 256)), .num_return = 1};
    } else if (name == "sample") {
      s.strategy = SampleOptions{.n = int(count(1, 1024)), .sampling = d.sampling, .seed = d.seed};
    } else if (name == "best-of") {
      s.strategy = BestOfOptions{.n_samples = int(count(1, 1024)), .n_return = 1, .sampling = d.sampling, .seed = d.seed};
    } else if (name == "vote") {
      s.strategy = VoteOptions{.n_samples = int(count(1, 1024)), .sampling = d.sampling, .seed = d.seed};
    } else if (name == "verify") {
      s.strategy = VerifyOptions{.n_samples = int(count(1, 1024)), .sampling = d.sampling, .seed = d.seed};
    } else if (name == "mcts") {
      MctsOptions m = d.mcts;
      m.seed = d.seed;
      if (!has_arg) throw InvalidArgument("--strategies item '" + item + "': mcts needs a budget (mcts:TOKENS or mcts:ITEM, e.g. mcts:vote:8)");
      if (!arg.empty() && std::all_of(arg.begin(), arg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        m.budget_tokens = count(1, int64_t(1) << 24);
      } else {
        const bool earlier = std::any_of(out.begin(), out.end(), [&](const StrategySpec& e) { return e.name == arg; });
        if (!earlier)
          throw InvalidArgument("--strategies item '" + item + "': the budget '" + arg +
                                "' is neither a token count nor an earlier item of the list");
        s.budget_from = arg;
      }
      s.strategy = m;
    } else {
      throw InvalidArgument("--strategies item '" + item + "': unknown strategy '" + name + "'; expected " + expected);
    }
    if (std::any_of(out.begin(), out.end(), [&](const StrategySpec& e) { return e.name == item; }))
      throw InvalidArgument("--strategies item '" + item + "' is given twice");
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace ponder
