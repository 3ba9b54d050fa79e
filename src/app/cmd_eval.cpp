// ponder eval: every decoding strategy of a list on the same problems (a built-in task's held-out
// split, or JSONL data), one row per strategy: accuracy with its 95% interval, format rate, tokens
// generated per problem (every path, beam and rollout) and seconds per problem; the JSON holds
// every problem's chosen answer per strategy, the plots accuracy against tokens and seconds.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/error.h"
#include "decode/item_format.h"
#include "eval/compare.h"
#include "formats/chat_template.h"
#include "model/model.h"
#include "tasks/dataset.h"

namespace ponder::app {

namespace {

struct EvalArgs {
  std::string model, data, strategies = "greedy,beam:4,sample:8,best-of:8,vote:8,verify:8,mcts:vote:8", json, plot;
  TaskOptions task;
  int count = 100, max_tokens = 64, top_k = 0, threads = 0;
  float temp = 0.7f, top_p = 1.0f;
  MctsOptions mcts;  // the tree-search flags (add_mcts_flags); the budget comes from the strategy list
  uint64_t seed = 0;
  bool chat = false;
};

void run_eval(const EvalArgs& a) {
  set_threads(a.threads);
  if (a.task.name.empty() == a.data.empty())
    throw InvalidArgument("give exactly one of --task (a built-in task's test split) and --data (a JSONL file)");
  if (a.count < 1) throw InvalidArgument("--count must be >= 1, got " + std::to_string(a.count));
  if (a.max_tokens < 1) throw InvalidArgument("--max-tokens must be >= 1, got " + std::to_string(a.max_tokens));
  SpecDefaults d{.sampling = {.temperature = a.temp, .top_k = a.top_k, .top_p = a.top_p}, .seed = a.seed};
  d.mcts = a.mcts;
  d.mcts.step_delim = unescape_flag(a.mcts.step_delim);
  d.mcts.sampling = d.sampling;
  d.mcts.sampling.temperature = a.temp > 0 ? a.temp : 1.0f;
  const std::vector<StrategySpec> specs = parse_strategy_specs(a.strategies, d);

  std::vector<TaskItem> items;
  if (!a.data.empty()) {
    items = read_rl_dataset(a.data);
    if (int(items.size()) > a.count) items.resize(size_t(a.count));
  } else {
    TaskOptions t = a.task;
    t.split = Split::Test;
    items = generate_items(t, a.count);
  }
  const auto m = load_model(a.model);
  // A model with an R1 or ChatML template is prompted as ponder trains such models
  // (decode/item_format.h: the question as the user turn, \boxed{} answers); --chat also wraps
  // other models' prompts (e.g. raw questions of a data file) in their template.
  ItemFormat format;
  try {
    format = item_format_of(m->file);
  } catch (const FormatError&) {  // a template ponder does not know: only --chat needs it
    if (a.chat) throw;
  }
  for (TaskItem& it : items) {
    if (format.chat) {
      it = format.apply(std::move(it));
    } else if (a.chat) {
      const std::vector<ChatMessage> messages = {{"user", it.prompt}};
      it.prompt = render_chat(detect_chat_format(m->file), messages, true);
    }
  }
  const StopOptions stop{.max_tokens = a.max_tokens};
  std::printf("%zu problems (%s), at most %d new tokens per path\n%s\n", items.size(),
              a.data.empty() ? (a.task.name + " difficulty " + std::to_string(task_difficulty(a.task))).c_str() : a.data.c_str(),
              a.max_tokens, table_header().c_str());
  std::fflush(stdout);
  const auto rows = compare_strategies(*m, items, specs, stop, [](const StrategyRow& r) {
    std::printf("%s\n", table_line(r).c_str());
    std::fflush(stdout);
  });
  if (!a.json.empty()) {
    nlohmann::json problems = nlohmann::json::array();
    for (const TaskItem& it : items) problems.push_back({{"prompt", it.prompt}, {"answer", it.answer}});
    nlohmann::json out = {{"model", a.model}, {"count", items.size()}, {"seed", a.seed}, {"max_tokens", a.max_tokens},
                          {"temperature", a.temp}, {"strategies", nlohmann::json::array()}, {"problems", problems}};
    if (a.data.empty()) out["task"] = {{"name", a.task.name}, {"difficulty", task_difficulty(a.task)}, {"seed", a.task.seed}};
    else out["data"] = a.data;
    for (const StrategyRow& r : rows) out["strategies"].push_back(row_json(r));
    std::ofstream f(a.json);
    if (!f) throw FormatError(a.json + ": cannot open for writing");
    f << out.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    if (!f) throw FormatError(a.json + ": write failed");
  }
  if (!a.plot.empty()) {
    write_tradeoff_plots(a.plot, rows, "accuracy against cost, " + std::to_string(items.size()) + " problems");
    std::printf("plots: %s, %s\n", a.plot.c_str(), seconds_plot_path(a.plot).c_str());
  }
}

}  // namespace

void add_eval(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Compare decoding strategies on a task's held-out problems or JSONL data");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model file")->required();
  add_task_options(cmd, a->task, "built-in task: arith | countdown (its test split)");
  cmd->add_option("--data", a->data, "JSONL problems {\"prompt\", \"answer\"} (countdown: also numbers, target)");
  cmd->add_option("--count", a->count, "problems (the first of --data)");
  cmd->add_option("--strategies", a->strategies,
                  "comma-separated: greedy, beam:K, sample:N, best-of:N, vote:N, verify:N, mcts:BUDGET "
                  "(tokens per problem, or an earlier item such as vote:8 for its tokens on each problem)");
  cmd->add_option("-n,--max-tokens", a->max_tokens, "new tokens per path");
  cmd->add_option("--temp", a->temp, "temperature of the sampled strategies and of MCTS expansion");
  cmd->add_option("--top-k", a->top_k, "top-k of the sampled strategies (0: off)");
  cmd->add_option("--top-p", a->top_p, "top-p of the sampled strategies (1: off)");
  cmd->add_option("--seed", a->seed, "seed of every sampled strategy (problem i draws from (seed, i))");
  add_mcts_flags(cmd, a->mcts);
  cmd->add_flag("--chat", a->chat,
                "render each prompt as the user message of the model's chat template (R1/ChatML models always are, "
                "with the question as the user turn)");
  cmd->add_option("--json", a->json, "write every problem's chosen answer per strategy to this file");
  cmd->add_option("--plot", a->plot, "SVG of accuracy against tokens per problem (and FILE-seconds.svg against seconds)");
  cmd->add_option("-t,--threads", a->threads, "threads (0: all cores)");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace ponder::app
