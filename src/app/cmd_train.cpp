// ponder train sft|grpo: training runs (options named as in TRL where they exist).
#include <cstdio>

#include "app/commands.h"
#include "core/error.h"
#include "train/sft.h"

namespace ponder::app {

namespace {

void add_sft(CLI::App* train) {
  auto* cmd = train->add_subcommand("sft", "Supervised fine-tuning on query + reasoning + answer data (cold start)");
  auto o = std::make_shared<SftOptions>();
  auto threads = std::make_shared<int>(0);
  cmd->add_option("--task", o->task.name, "built-in task: arith | countdown");
  cmd->add_option("--difficulty", o->task.difficulty, "task difficulty 1..3");
  cmd->add_option("--task-seed", o->task.seed, "seed of the task generator");
  cmd->add_option("--data", o->data_path, "JSONL file of {\"prompt\", \"completion\"} instead of --task");
  cmd->add_option("--preset", o->preset, "train from scratch: tiny | small | 5m (character vocabulary)");
  cmd->add_option("--model", o->init_model, "start from this GGUF (llama architecture) instead of --preset");
  cmd->add_option("--steps", o->steps, "optimizer steps");
  cmd->add_option("--batch", o->batch_size, "sequences per micro-batch");
  cmd->add_option("--accum", o->grad_accum, "micro-batches per step (gradient accumulation)");
  cmd->add_option("--max-len", o->max_len, "tokens per sequence");
  cmd->add_option("--lr", o->adamw.lr, "peak learning rate");
  cmd->add_option("--min-lr-ratio", o->min_lr_ratio, "final learning rate / peak (cosine)");
  cmd->add_option("--warmup", o->warmup, "warmup steps");
  cmd->add_option("--weight-decay", o->adamw.weight_decay, "AdamW weight decay (matrices only)");
  cmd->add_option("--beta1", o->adamw.beta1, "AdamW beta1");
  cmd->add_option("--beta2", o->adamw.beta2, "AdamW beta2");
  cmd->add_option("--max-grad-norm", o->adamw.max_grad_norm, "clip gradients to this global norm (0: off)");
  cmd->add_option("--seed", o->seed, "seed (initialisation, data order)");
  cmd->add_option("--eval-every", o->eval_every, "evaluate every N steps (0: at the end only)");
  cmd->add_option("--eval-count", o->eval_count, "held-out items to evaluate");
  cmd->add_option("--out", o->out_dir, "output folder: checkpoint.bin, metrics.jsonl, *.svg, model.gguf");
  cmd->add_option("--save-every", o->save_every, "checkpoint every N steps");
  cmd->add_flag("--resume", o->resume, "continue from OUT/checkpoint.bin");
  cmd->add_flag("--quiet", o->quiet, "no progress bar");
  cmd->add_option("-t,--threads", *threads, "threads (default: all cores)");
  cmd->callback([o, threads] {
    set_threads(*threads);
    const SftResult r = run_sft(*o);
    std::printf("sft: final loss %.4f, %.0f tokens/s", r.final_loss, r.tokens_per_second);
    if (r.eval_accuracy >= 0) std::printf(", held-out greedy accuracy %.3f, format %.3f", r.eval_accuracy, r.eval_format);
    std::printf("\nmodel: %s\n", r.model_path.c_str());
  });
}

}  // namespace

void add_train(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train a model: sft, grpo");
  train->require_subcommand(1);
  add_sft(train);
}

}  // namespace ponder::app
