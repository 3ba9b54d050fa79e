#include "eval/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "decode/paths.h"
#include "tasks/answer.h"
#include "tasks/reward.h"

namespace ponder {

std::optional<std::string> evaluated_answer(std::string_view completion) {
  const size_t think_end = completion.find("</think>");
  const std::string_view answer = think_end == std::string_view::npos ? completion : completion.substr(think_end + 8);
  if (answer.find("<answer>") == std::string_view::npos && answer.find("\\boxed") == std::string_view::npos) return std::nullopt;
  return extract_answer(answer);
}

bool is_correct_completion(std::string_view completion, const TaskItem& item) {
  const std::optional<std::string> a = evaluated_answer(completion);
  if (!a) return false;
  if (item.check == AnswerCheck::Countdown) return check_countdown(*a, item.numbers, item.target);
  return normalize_answer(*a) == normalize_answer(item.answer);
}

Verifier item_verifier(const TaskItem& item) {
  return [item](const std::string& completion) { return is_correct_completion(completion, item) ? 1.0 : 0.0; };
}

AnswerKey item_answer_key(const TaskItem& item) {
  if (item.check != AnswerCheck::Countdown) return {};
  return [numbers = item.numbers](const std::string& answer) {
    const std::optional<int64_t> v = countdown_value(answer, numbers);
    return v ? "value " + std::to_string(*v) : answer;
  };
}

std::pair<double, double> wilson_interval(double p, int n) {
  if (n <= 0) return {0, 0};
  const double z = 1.959964, z2n = z * z / n;
  const double centre = (p + z2n / 2) / (1 + z2n);
  const double half = z / (1 + z2n) * std::sqrt(std::max(0.0, p * (1 - p) / n + z2n / (4.0 * n)));
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

namespace {

// Strategies whose paths are sampled (or greedy) from the prompt and then selected: every item's
// paths can step together with other items'.
bool batched(const Strategy& s) {
  return !std::holds_alternative<BeamOptions>(s) && !std::holds_alternative<MctsOptions>(s);
}

// Items per batch: about 256 paths at once.
size_t chunk_items(const Strategy& s) { return size_t(std::max(1, 256 / std::max(1, n_paths(s)))); }

// The strategy's sampling and seed for the paths of batched strategies.
PathsOptions paths_options(const Strategy& s, size_t item) {
  PathsOptions o;
  std::visit([&](const auto& x) {
    using T = std::decay_t<decltype(x)>;
    if constexpr (std::is_same_v<T, GreedyOptions>) {
      o.sampling.temperature = 0;
    } else if constexpr (std::is_same_v<T, SampleOptions>) {
      o = {.n = x.n, .sampling = x.sampling, .seed = x.seed};
    } else if constexpr (std::is_same_v<T, BestOfOptions> || std::is_same_v<T, VoteOptions> || std::is_same_v<T, VerifyOptions>) {
      o = {.n = x.n_samples, .sampling = x.sampling, .seed = x.seed};
    }
  }, s);
  // Each item draws from its own streams: the strategy's seed mixed with the item index.
  o.seed = Rng::derive(o.seed, item).next_u64();
  return o;
}

ItemOutcome outcome(Path& chosen, int64_t all_tokens, const TaskItem& item) {
  if (chosen.reasoning.empty() && chosen.answer.empty()) finish_path(chosen);
  return {.answer = chosen.extracted_answer, .correct = is_correct_completion(chosen.text, item) ? 1.0 : 0.0,
          .formatted = format_reward(chosen.text, item.style), .tokens = all_tokens, .chosen_tokens = int64_t(chosen.tokens.size())};
}

ItemOutcome select(LanguageModel& lm, const Strategy& s, std::vector<Path> paths, const TaskItem& item) {
  const int64_t all = count_tokens(paths);
  if (std::holds_alternative<GreedyOptions>(s)) return outcome(paths.at(0), all, item);
  if (std::holds_alternative<SampleOptions>(s)) {  // every path is an answer: the mean over them
    ItemOutcome o = outcome(paths.at(0), all, item);
    o.correct = o.formatted = 0;
    for (const Path& p : paths)
      o.correct += is_correct_completion(p.text, item), o.formatted += format_reward(p.text, item.style);
    o.correct /= double(paths.size()), o.formatted /= double(paths.size());
    return o;
  }
  GenerateResult r;
  if (const auto* b = std::get_if<BestOfOptions>(&s)) r = select_best_of(lm, std::move(paths), *b);
  else if (const auto* v = std::get_if<VoteOptions>(&s)) r = select_vote(std::move(paths), *v, item_answer_key(item));
  else r = select_verify(std::move(paths), item_verifier(item));
  return outcome(r.paths.at(0), all, item);
}

}  // namespace

EvalResult evaluate(LanguageModel& lm, std::span<const TaskItem> items, std::span<const std::vector<int32_t>> prompts,
                    const Strategy& strategy, const StopOptions& stop, std::span<const int64_t> mcts_budgets) {
  if (prompts.size() != items.size()) throw InvalidArgument("evaluate: one prompt per item");
  if (!mcts_budgets.empty() && mcts_budgets.size() != items.size())
    throw InvalidArgument("evaluate: one MCTS budget per item, got " + std::to_string(mcts_budgets.size()) + " for " +
                          std::to_string(items.size()) + " items");
  const auto t0 = std::chrono::steady_clock::now();
  EvalResult r;
  if (batched(strategy)) {
    // Validated as generate() would, once for all items.
    if (!items.empty()) {
      GenerateRequest check{.prompt = prompts[0], .strategy = strategy, .stop = stop};
      if (std::holds_alternative<VerifyOptions>(strategy)) check.verifier = item_verifier(items[0]);
      validate(check, lm.n_vocab());
    }
    const size_t chunk = chunk_items(strategy);
    for (size_t first = 0; first < items.size(); first += chunk) {
      const size_t n = std::min(chunk, items.size() - first);
      std::vector<PathsOptions> opts;
      for (size_t i = first; i < first + n; ++i) opts.push_back(paths_options(strategy, i));
      auto results = run_paths_batch(lm, prompts.subspan(first, n), opts, stop);
      for (size_t i = 0; i < n; ++i) r.items.push_back(select(lm, strategy, std::move(results[i]), items[first + i]));
    }
  } else {
    for (size_t i = 0; i < items.size(); ++i) {
      Strategy s = strategy;
      std::visit([&](auto& o) {
        if constexpr (requires { o.seed; }) o.seed = Rng::derive(o.seed, i).next_u64();
      }, s);
      if (auto* m = std::get_if<MctsOptions>(&s); m && !mcts_budgets.empty()) m->budget_tokens = std::max<int64_t>(1, mcts_budgets[i]);
      GenerateRequest req{.prompt = prompts[i], .strategy = s, .stop = stop, .verifier = item_verifier(items[i]),
                          .answer_key = item_answer_key(items[i])};
      GenerateResult g = generate(lm, req);
      // Beams and rollouts count too: the decode layer's own count.
      r.items.push_back(outcome(g.paths.at(0), g.tokens_generated, items[i]));
    }
  }
  for (const ItemOutcome& o : r.items) {
    r.accuracy += o.correct, r.format_rate += o.formatted;
    r.mean_tokens += double(o.chosen_tokens), r.tokens_per_problem += double(o.tokens);
  }
  r.n = int(r.items.size());
  if (r.n > 0) {
    r.accuracy /= r.n, r.format_rate /= r.n, r.mean_tokens /= r.n, r.tokens_per_problem /= r.n;
    r.seconds_per_problem = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / r.n;
  }
  std::tie(r.ci_low, r.ci_high) = wilson_interval(r.accuracy, r.n);
  return r;
}

EvalResult evaluate(const Model& model, std::span<const TaskItem> items, const Strategy& strategy,
                    const StopOptions& stop, std::span<const int64_t> mcts_budgets) {
  std::vector<std::vector<int32_t>> prompts;
  for (const TaskItem& it : items) prompts.push_back(model.tokenizer.encode(it.prompt, true, true));
  int positions = 0;
  if (batched(strategy)) {
    const size_t chunk = chunk_items(strategy);
    for (size_t first = 0; first < prompts.size(); first += chunk)
      positions = std::max(positions, kv_positions_for(std::span(prompts).subspan(first, std::min(chunk, prompts.size() - first)),
                                                       n_paths(strategy), stop.max_tokens));
  } else {
    Strategy sized = strategy;
    if (auto* m = std::get_if<MctsOptions>(&sized); m && !mcts_budgets.empty())
      m->budget_tokens = std::max<int64_t>(1, *std::max_element(mcts_budgets.begin(), mcts_budgets.end()));
    size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, p.size());
    positions = kv_positions_for(int64_t(longest), sized, stop.max_tokens);
  }
  ModelRunner runner(model, std::max(positions, ModelRunner::kBlockSize));
  return evaluate(runner, items, prompts, strategy, stop, mcts_budgets);
}

std::vector<std::vector<int32_t>> greedy_completions(const Model& model, std::span<const TaskItem> items,
                                                     const StopOptions& stop) {
  if (items.empty()) return {};
  std::vector<std::vector<int32_t>> prompts;
  for (const TaskItem& it : items) prompts.push_back(model.tokenizer.encode(it.prompt, true, true));
  std::vector<PathsOptions> greedy(items.size());
  for (PathsOptions& o : greedy) o.sampling.temperature = 0;
  ModelRunner runner(model, kv_positions_for(prompts, 1, stop.max_tokens));
  std::vector<std::vector<int32_t>> out;
  for (const auto& paths : run_paths_batch(runner, prompts, greedy, stop)) out.push_back(paths.at(0).tokens);
  return out;
}

std::vector<size_t> greedy_differences(const Model& a, const Model& b, std::span<const TaskItem> items,
                                       const StopOptions& stop) {
  const auto ta = greedy_completions(a, items, stop), tb = greedy_completions(b, items, stop);
  std::vector<size_t> differ;
  for (size_t i = 0; i < items.size(); ++i)
    if (ta[i] != tb[i]) differ.push_back(i);
  return differ;
}

}  // namespace ponder
