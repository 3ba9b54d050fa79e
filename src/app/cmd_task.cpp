// ponder task: print generated items of a built-in task as JSONL (RL or SFT data).
#include <cstdio>

#include "app/commands.h"
#include "core/error.h"
#include "tasks/dataset.h"
#include "tasks/task.h"

namespace ponder::app {

namespace {
struct TaskArgs {
  std::string name = "arith", split = "train", prompt_template = "compact";
  int count = 0;
  uint64_t seed = 0;
  int difficulty = -1;  // the task's default (tasks/task.h default_difficulty), as every command
  bool sft = false;
};

void run_task(const TaskArgs& a) {
  if (a.count < 0) throw InvalidArgument("--count must be >= 0, got " + std::to_string(a.count));
  TaskOptions opt;
  opt.name = a.name;
  opt.split = parse_split(a.split);
  opt.seed = a.seed;
  opt.difficulty = a.difficulty;
  opt.prompt_template = parse_prompt_template(a.prompt_template);
  validate_task_options(opt);
  for (int i = 0; i < a.count; ++i) {
    const TaskItem item = generate_item(opt, i);
    const std::string line = a.sft ? sft_json_line(make_sft_example(item)) : rl_json_line(item);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
  }
}
}  // namespace

void add_task(CLI::App& app) {
  auto* cmd = app.add_subcommand("task", "Print items of a built-in verifiable task as JSONL");
  auto a = std::make_shared<TaskArgs>();
  cmd->add_option("--name", a->name, "task: arith or countdown");
  cmd->add_option("--split", a->split, "train or test (disjoint sets of problems)");
  cmd->add_option("--count", a->count, "number of items")->required();
  cmd->add_option("--seed", a->seed, "random seed");
  cmd->add_option("--difficulty", a->difficulty, "arith 0..3, countdown 1..3 (default: arith 0, countdown 1)");
  cmd->add_option("--template", a->prompt_template, "prompt template: compact (\"Q: 12+7-3= A: <think>\") or r1zero");
  cmd->add_flag("--sft", a->sft, "print {\"prompt\", \"completion\"} with the reference reasoning instead of "
                                 "{\"prompt\", \"answer\"}");
  cmd->callback([a] { run_task(*a); });
}

}  // namespace ponder::app
