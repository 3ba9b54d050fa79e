#include "eval/evaluate.h"

#include <chrono>

#include "core/rng.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "decode/paths.h"
#include "tasks/reward.h"

namespace ponder {

namespace {

struct Tally {
  EvalResult r;
  void add(const Path& chosen, int64_t tokens_all_paths, const TaskItem& item) {
    r.accuracy += accuracy_reward(chosen.text, item);
    r.format_rate += format_reward(chosen.text);
    r.mean_tokens += double(chosen.tokens.size());
    r.tokens_per_problem += double(tokens_all_paths);
    ++r.n;
  }
  EvalResult finish(double seconds) {
    if (r.n > 0) {
      r.accuracy /= r.n, r.format_rate /= r.n, r.mean_tokens /= r.n, r.tokens_per_problem /= r.n;
      r.seconds_per_problem = seconds / r.n;
    }
    return r;
  }
};

}  // namespace

EvalResult evaluate(const Model& model, std::span<const TaskItem> items, const Strategy& strategy,
                    const StopOptions& stop) {
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::vector<int32_t>> prompts;
  for (const TaskItem& it : items) {
    prompts.push_back(model.tokenizer.encode(it.prompt, true, false));
  }
  Tally tally;
  const int paths = n_paths(strategy);
  if (std::holds_alternative<GreedyOptions>(strategy) || std::holds_alternative<SampleOptions>(strategy)) {
    std::vector<PathsOptions> opts(items.size());
    if (const auto* s = std::get_if<SampleOptions>(&strategy))
      for (size_t i = 0; i < items.size(); ++i)
        opts[i] = {.n = s->n, .sampling = s->sampling, .seed = Rng::derive(s->seed, i).next_u64()};
    else
      for (PathsOptions& o : opts) o.sampling.temperature = 0;
    ModelRunner runner(model, kv_positions_for(prompts, paths, stop.max_tokens));
    const auto results = run_paths_batch(runner, prompts, opts, stop);
    for (size_t i = 0; i < items.size(); ++i) {
      int64_t all = 0;  // every path is returned
      for (const Path& p : results[i]) all += int64_t(p.tokens.size());
      tally.add(results[i][0], all, items[i]);
    }
  } else {
    size_t longest = 0;
    for (const auto& p : prompts) longest = std::max(longest, p.size());
    ModelRunner runner(model, kv_positions_for(int64_t(longest), 1, paths, stop.max_tokens));
    for (size_t i = 0; i < items.size(); ++i) {
      // Each item draws from its own streams: the strategy's seed mixed with the item index.
      Strategy s = strategy;
      std::visit([&](auto& o) {
        if constexpr (requires { o.seed; }) o.seed = Rng::derive(o.seed, i).next_u64();
      }, s);
      GenerateRequest req{.prompt = prompts[i], .strategy = s, .stop = stop};
      const GenerateResult r = generate(runner, req);
      // Beams and best-of's unreturned samples count too: the decode layer's own count.
      tally.add(r.paths.at(0), r.tokens_generated, items[i]);
    }
  }
  return tally.finish(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

std::vector<std::vector<int32_t>> greedy_completions(const Model& model, std::span<const TaskItem> items,
                                                     const StopOptions& stop) {
  if (items.empty()) return {};
  std::vector<std::vector<int32_t>> prompts;
  for (const TaskItem& it : items) prompts.push_back(model.tokenizer.encode(it.prompt, true, false));
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
