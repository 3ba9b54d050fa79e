// ponder train sft|grpo: training runs (options named as in TRL where they exist).
#include <cstdio>

#include "app/commands.h"
#include "app/evaluators.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "eval/training_plots.h"
#include "train/dist.h"
#include "train/grpo.h"
#include "train/sft.h"

namespace ponder::app {

namespace {

// --lora-rank, --lora-alpha, --lora-targets (PEFT's r, lora_alpha, target_modules).
void add_lora_options(CLI::App* cmd, LoraConfig& lora) {
  cmd->add_option("--lora-rank", lora.rank, "train LoRA adapters of this rank on the frozen --model (0: full fine-tuning)");
  cmd->add_option("--lora-alpha", lora.alpha, "LoRA alpha: the update is scaled by alpha / rank");
  cmd->add_option_function<std::string>(
      "--lora-targets", [&lora](const std::string& text) { lora.targets = parse_lora_targets(text); },
      "matrices to adapt, a subset of q,k,v,o,gate,up,down (default: all seven)");
}

void add_sft(CLI::App* train) {
  auto* cmd = train->add_subcommand("sft", "Supervised fine-tuning on query + reasoning + answer data (cold start); "
                                           "data-parallel under mpirun -np R (each rank trains --accum / R micro-batches)");
  auto o = std::make_shared<SftOptions>();
  auto threads = std::make_shared<int>(0);
  auto eval_count = std::make_shared<int>(100);
  auto abort_after = std::make_shared<int64_t>(-1);
  add_task_options(cmd, o->task, "built-in task: arith | countdown");
  cmd->add_option("--data", o->data_path, "JSONL file of {\"prompt\", \"completion\"} (this or --task is required)");
  cmd->add_option("--preset", o->preset, "train from scratch: tiny | small | 5m, character vocabulary (this or --model is required)");
  cmd->add_option("--model", o->init_model, "start from this GGUF: llama or qwen2, any vocabulary (this or --preset is required)");
  add_lora_options(cmd, o->lora);
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
  cmd->add_option("--eval-count", *eval_count, "held-out items to evaluate greedily (--task only; 0: none)");
  cmd->add_option("--out", o->out_dir, "output folder: checkpoint.bin, metrics.jsonl, *.svg, model.gguf");
  cmd->add_option("--save-every", o->save_every, "checkpoint every N steps");
  cmd->add_flag("--resume", o->resume, "continue from OUT/checkpoint.bin (an error when there is none)");
  cmd->add_flag("--quiet", o->quiet, "no progress bar");
  cmd->add_option("-t,--threads", *threads, "threads (default: all cores)");
  // Tests: abort the process after N bytes of file writes (a kill in the middle of a checkpoint).
  cmd->add_option("--abort-after-bytes", *abort_after, "")->group("");
  cmd->callback([o, threads, eval_count, abort_after] {
    set_threads(*threads);
    abort_after_bytes(*abort_after);
    const SftResult r = run_sft(*o, held_out_evaluator(o->task, *eval_count, 96));
    if (!dist().root()) return;  // rank 0 writes and reports (mpirun)
    write_sft_plots(o->out_dir);
    std::printf("sft: final loss %.4f, %.0f tokens/s", r.final_loss, r.tokens_per_second);
    if (r.eval_accuracy >= 0) std::printf(", held-out greedy accuracy %.3f, format %.3f", r.eval_accuracy, r.eval_format);
    std::printf("\nmodel: %s%s\n", r.model_path.c_str(), o->lora.enabled() ? " (the adapters merged in)" : "");
    if (!r.lora_path.empty()) std::printf("lora adapter: %s\n", r.lora_path.c_str());
  });
}

void add_grpo(CLI::App* train) {
  auto* cmd = train->add_subcommand("grpo", "GRPO with rule-based rewards (TRL's options); data-parallel under "
                                            "mpirun -np R (each rank rolls out --prompts-per-step / R groups)");
  auto o = std::make_shared<GrpoOptions>();
  auto threads = std::make_shared<int>(0);
  auto eval_count = std::make_shared<int>(100);
  auto loss_type = std::make_shared<std::string>("dapo");
  auto scale = std::make_shared<std::string>("group");
  add_task_options(cmd, o->task, "built-in task: arith | countdown");
  cmd->add_option("--data", o->data_path, "JSONL file of {\"prompt\", \"answer\"} (this or --task is required)");
  cmd->add_option("--model", o->model, "the GGUF policy to start from (e.g. the SFT model)")->required();
  add_lora_options(cmd, o->lora);
  cmd->add_option("--steps", o->steps, "optimizer steps (generation batches)");
  cmd->add_option("--prompts-per-step", o->prompts_per_step, "prompts per generation batch, 1..4096");
  cmd->add_option("--num-generations", o->num_generations, "completions per prompt (G), 2..1024");
  cmd->add_option("--temperature", o->temperature, "rollout temperature (> 0)");
  cmd->add_option("--top-p", o->top_p, "rollout top-p, in (0, 1] (1: off)");
  cmd->add_option("--top-k", o->top_k, "rollout top-k (0: off)");
  cmd->add_option("-n,--max-completion-length", o->max_completion_length, "max new tokens per completion");
  cmd->add_option("--beta", o->beta, "KL coefficient (k3 estimator, to the starting model; 0: no reference model)");
  cmd->add_option("--epsilon", o->epsilon, "clip: ratio >= 1 - epsilon");
  cmd->add_option("--epsilon-high", o->epsilon_high, "clip: ratio <= 1 + epsilon_high (DAPO clip-higher)");
  cmd->add_option("--num-iterations", o->num_iterations, "mu: updates per generation batch, 1..64");
  cmd->add_option("--loss-type", *loss_type, "grpo | bnpo | dr_grpo | dapo (normalised over the whole step)");
  cmd->add_option("--scale-rewards", *scale, "group | batch | none");
  cmd->add_flag("--mask-truncated-completions", o->mask_truncated_completions, "no loss on completions cut by the length limit");
  cmd->add_flag("--dynamic-sampling", o->dynamic_sampling,
                "DAPO: generate batches until --prompts-per-step groups have unequal rewards; train on those only");
  cmd->add_option("--max-num-gen-batches", o->max_num_gen_batches,
                  "dynamic sampling: generation batches per step at most; none usable: the update is skipped");
  cmd->add_option("--rewards", o->rewards, "weighted rewards, e.g. accuracy:1,format:0.5 (accuracy, format, tinyzero, overlong)");
  cmd->add_option("--micro-batch", o->micro_batch, "sequences per forward/backward (memory only: the update is the same)");
  cmd->add_option("--lr", o->adamw.lr,
                  "learning rate, constant after the warmup; the default fine-tunes a trained model without wrecking it "
                  "(the demo's rate: 10x higher took the demo's model from 97.5% to 20% held-out accuracy in 20 steps)");
  cmd->add_option("--warmup", o->warmup, "linear warmup steps (0: the full rate from the first step)");
  cmd->add_option("--min-lr-ratio", o->min_lr_ratio, "final learning rate / peak (cosine; 1 = constant)");
  cmd->add_option("--weight-decay", o->adamw.weight_decay, "AdamW weight decay");
  cmd->add_option("--max-grad-norm", o->adamw.max_grad_norm, "clip gradients to this global norm (0: off)");
  cmd->add_option("--seed", o->seed, "rollout seed");
  cmd->add_option("--eval-count", *eval_count, "held-out items evaluated greedily (--task only; 0: none)");
  cmd->add_option("--eval-every", o->eval_every, "evaluate every N steps (0: at the end only)");
  cmd->add_option("--out", o->out_dir, "output folder: checkpoint.bin, metrics.jsonl, *.svg, model.gguf");
  cmd->add_option("--save-every", o->save_every, "checkpoint every N steps");
  cmd->add_flag("--resume", o->resume, "continue from OUT/checkpoint.bin (an error when there is none)");
  cmd->add_flag("--quiet", o->quiet, "no progress bar");
  cmd->add_option("-t,--threads", *threads, "threads (default: all cores)");
  cmd->callback([o, threads, eval_count, loss_type, scale] {
    set_threads(*threads);
    o->loss_type = parse_loss_type(*loss_type);
    o->scale_rewards = parse_scale_rewards(*scale);
    const GrpoResult r = run_grpo(*o, held_out_evaluator(o->task, *eval_count, o->max_completion_length));
    if (!dist().root()) return;  // rank 0 writes and reports (mpirun)
    write_grpo_plots(o->out_dir);
    double roll_tok_s = 0;
    int skipped = 0;
    for (const GrpoStepStats& s : r.steps) roll_tok_s += s.rollout_tokens_per_s / double(r.steps.size()), skipped += s.skipped;
    if (!r.steps.empty()) {
      const GrpoStepStats& last = r.steps.back();
      std::printf("grpo: last step reward %.3f accuracy %.3f format %.3f length %.1f; rollouts %.0f%% of the time, %.0f tok/s\n",
                  last.reward_mean, last.accuracy, last.format_rate, last.completion_length, 100 * r.rollout_share, roll_tok_s);
    }
    if (skipped > 0) std::printf("%d of %zu steps skipped their update (no group with unequal rewards)\n", skipped, r.steps.size());
    if (r.eval_accuracy >= 0) std::printf("held-out greedy accuracy %.3f, format %.3f\n", r.eval_accuracy, r.eval_format);
    std::printf("model: %s%s\n", r.model_path.c_str(), o->lora.enabled() ? " (the adapters merged in)" : "");
    if (!r.lora_path.empty()) std::printf("lora adapter: %s\n", r.lora_path.c_str());
  });
}

}  // namespace

void add_train(CLI::App& app) {
  auto* train = app.add_subcommand("train", "Train a model: sft, grpo");
  train->require_subcommand(1);
  add_sft(train);
  add_grpo(train);
}

}  // namespace ponder::app
