// ponder sample: rejection sampling, the correct completions of a model as new SFT data.
#include <cstdio>

#include "app/commands.h"
#include "train/rejection.h"

namespace ponder::app {

void add_sample(CLI::App& app) {
  auto* cmd = app.add_subcommand("sample", "Rejection sampling: keep a model's correct completions as SFT JSONL");
  auto o = std::make_shared<RejectionOptions>();
  auto threads = std::make_shared<int>(0);
  add_task_options(cmd, o->task, "built-in task: arith | countdown (train split)");
  cmd->add_option("--data", o->data_path, "JSONL file of {\"prompt\", \"answer\"} (this or --task is required)");
  cmd->add_option("--model", o->model, "GGUF model")->required();
  cmd->add_option("--samples", o->samples, "completions drawn per prompt (N), 1..1024");
  cmd->add_option("--count", o->count, "prompts");
  cmd->add_option("--temperature", o->temperature, "sampling temperature (> 0)");
  cmd->add_option("--top-p", o->top_p, "top-p, in (0, 1] (1: off)");
  cmd->add_option("--top-k", o->top_k, "top-k (0: off)");
  cmd->add_option("-n,--max-tokens", o->max_tokens, "max new tokens per completion");
  cmd->add_option("--seed", o->seed, "seed");
  cmd->add_flag("!--any-format", o->require_format, "accept correct answers whatever the format");
  cmd->add_option("-o,--output", o->output, "SFT JSONL file to write")->required();
  cmd->add_option("-t,--threads", *threads, "threads (default: all cores)");
  cmd->callback([o, threads] {
    set_threads(*threads);
    const RejectionResult r = rejection_sample(*o);
    std::printf("sample: %d prompts x %d = %d completions, %d correct (acceptance %.1f%%), %d unique written, "
                "%d of %d prompts with at least one, %.1f s\nwrote %s\n",
                r.prompts, o->samples, r.drawn, r.accepted, 100 * r.acceptance_rate(), r.unique_accepted,
                r.prompts_with_accept, r.prompts, r.seconds, o->output.c_str());
  });
}

}  // namespace ponder::app
