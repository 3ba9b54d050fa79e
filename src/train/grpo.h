#pragma once
// GRPO (DeepSeekMath; TRL's GRPOTrainer options and semantics): for each prompt sample a group of
// G completions with the batched multi-path engine (all groups of a step in one batch), reward
// them with rule-based rewards, normalise the rewards within the group, and push the policy
// toward the better completions with the clipped ratio objective (train/grpo_loss.h), normalised
// over the whole step whatever the micro-batch size. The loop (train/grpo.cpp) is a screen of
// calls; the steps (rollout, score, update) are in train/grpo_step.h.
//
// Held-out scores come from the caller's Evaluator (train/hooks.h); plots are drawn by the caller
// from OUT/metrics.jsonl (eval/training_plots.h). Metrics, one JSON line per step: step,
// reward_mean, reward_std, accuracy, format_rate, completion_length (over every rollout generated
// in the step), loss, kl, clip_fraction, grad_norm (step-wide, averaged over the mu iterations),
// lr, rollout_seconds, train_seconds, rollout_tokens_per_s, groups_generated, groups_used, skipped
// (no update: dynamic sampling found no group with unequal rewards), rollout_vs_train_logp,
// comm_seconds and comm_bytes (data-parallel runs: time in collectives, bytes sent); and a
// line {step, eval_accuracy, eval_format, eval_mean_tokens} for each evaluation.
#include <cstdint>
#include <string>
#include <vector>

#include "tasks/task.h"
#include "train/lora.h"
#include "train/adamw.h"
#include "train/grpo_loss.h"
#include "train/hooks.h"

namespace ponder {

struct GrpoOptions {
  TaskOptions task;                  // a built-in task, or
  std::string data_path;             // a JSONL file of {"prompt", "answer"}
  std::string model;                 // the GGUF policy to start from (e.g. the SFT model)
  LoraConfig lora{.rank = 0};        // rank > 0: train LoRA adapters on the frozen model (train/lora.h);
                                     // the KL reference (beta > 0) is then the model without them
  int steps = 100;
  int prompts_per_step = 16;
  int num_generations = 8;           // G
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;
  int max_completion_length = 96;
  float beta = 0.0f;                 // KL to the frozen reference (the starting model)
  float epsilon = 0.2f;
  float epsilon_high = 0.2f;         // DAPO clip-higher: set above epsilon
  int num_iterations = 1;            // mu: optimizer steps per generation batch
  LossType loss_type = LossType::Dapo;
  ScaleRewards scale_rewards = ScaleRewards::Group;
  bool mask_truncated_completions = false;
  // DAPO dynamic sampling: keep generating batches of prompts_per_step groups until the step holds
  // prompts_per_step groups whose rewards are not all equal (the first ones found), at most
  // max_num_gen_batches batches (DAPO's max_num_gen_batches); the step trains on what it found
  // and skips the update when it found none.
  bool dynamic_sampling = false;
  int max_num_gen_batches = 4;
  std::string rewards = "accuracy:1,format:0.5";
  int micro_batch = 32;              // sequences per forward/backward (the update does not depend on it)
  // Defaults that fine-tune a trained model without wrecking it: the demo's rate (a tenth of its
  // SFT's final one), no warmup, gradients clipped to norm 1. Measured on the demo's model, 20 steps
  // of `train grpo --task arith`: held-out greedy accuracy 97.5% -> 97.0% (200 items; 5e-4, the
  // old default, took it to 20.5%).
  AdamWOptions adamw{.lr = 5e-5f, .beta1 = 0.9f, .beta2 = 0.99f, .weight_decay = 0.0f, .max_grad_norm = 1.0f};
  int warmup = 0;
  float min_lr_ratio = 1.0f;         // constant learning rate after the warmup by default
  uint64_t seed = 0;
  int eval_every = 0;                // call the Evaluator every N steps (0: only at the end)
  std::string out_dir = "out/grpo";
  int save_every = 25;
  bool resume = false;               // continue from OUT/checkpoint.bin (an error when there is none)
  bool quiet = false;                // no progress bar
  int stop_after = 0;                // > 0: stop after this many steps of this run, as if killed (tests)

  void validate() const;             // InvalidArgument naming the flag, the allowed range and the value
  std::string to_json() const;       // what a checkpoint records (and --resume checks)
};

struct GrpoStepStats {
  int64_t step = 0;
  double reward_mean = 0, reward_std = 0, accuracy = 0, format_rate = 0, completion_length = 0;
  double loss = 0, kl = 0, clip_fraction = 0, grad_norm = 0, lr = 0;
  double rollout_seconds = 0, train_seconds = 0, rollout_tokens_per_s = 0;  // seconds without comm_seconds
  double comm_seconds = 0, comm_bytes = 0;  // in collectives, bytes this rank sent (mpirun, train/dist.h)
  double rollout_vs_train_logp = 0;  // max |rollout log-prob - training forward log-prob|
  int groups_generated = 0;          // groups rolled out in the step (all generation batches)
  int groups_used = 0;               // groups trained on
  bool skipped = false;              // no update: no usable group
};

struct GrpoResult {
  std::vector<GrpoStepStats> steps;  // the steps this run did
  double eval_accuracy = -1, eval_format = -1;  // the Evaluator's last score (-1: not evaluated)
  int64_t resumed_from = 0;          // the checkpoint's step (--resume), else 0
  std::string model_path;            // the exported GGUF (with LoRA: the adapters merged in)
  std::string lora_path;             // with LoRA: the adapter GGUF
  double rollout_share = 0;          // of this run's step time
};

// Trains, checkpoints, exports OUT/model.gguf and, when `evaluate` is given, scores the current
// weights every eval_every steps and at the end. Throws InvalidArgument for bad options (and
// --resume without a checkpoint), FormatError for bad data or a checkpoint that does not match.
GrpoResult run_grpo(const GrpoOptions& options, const Evaluator& evaluate = {});

}  // namespace ponder
