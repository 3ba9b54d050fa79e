#pragma once
// GRPO (DeepSeekMath; TRL's GRPOTrainer options and semantics): for each prompt sample a group of
// G completions with the batched multi-path engine (all groups of a step in one batch), reward
// them with rule-based rewards, normalise the rewards within the group, and push the policy
// toward the better completions with the clipped ratio objective (train/grpo_loss.h).
#include <cstdint>
#include <string>
#include <vector>

#include "tasks/reward.h"
#include "tasks/task.h"
#include "train/adamw.h"
#include "train/grpo_loss.h"

namespace ponder {

struct GrpoOptions {
  TaskOptions task;                  // a built-in task, or
  std::string data_path;             // a JSONL file of {"prompt", "answer"}
  std::string model;                 // the GGUF policy to start from (e.g. the SFT model)
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
  bool dynamic_sampling = false;     // DAPO: drop groups whose rewards are all equal
  std::string rewards = "accuracy:1,format:0.5";
  int micro_batch = 32;              // sequences per forward/backward
  AdamWOptions adamw{.lr = 5e-4f, .beta1 = 0.9f, .beta2 = 0.99f, .weight_decay = 0.0f, .max_grad_norm = 1.0f};
  int warmup = 0;
  float min_lr_ratio = 1.0f;         // constant learning rate by default
  uint64_t seed = 0;
  int eval_every = 0;
  int eval_count = 100;
  std::string out_dir = "out/grpo";
  int save_every = 25;
  bool resume = false;
  bool quiet = false;

  void validate() const;
  std::string to_json() const;
};

struct GrpoStepStats {
  int64_t step = 0;
  double reward_mean = 0, reward_std = 0, accuracy = 0, format_rate = 0, completion_length = 0;
  double loss = 0, kl = 0, clip_fraction = 0, grad_norm = 0;
  double rollout_seconds = 0, train_seconds = 0, rollout_tokens_per_s = 0;
  double rollout_vs_train_logp = 0;  // max |rollout log-prob - training forward log-prob|
  int groups_used = 0;
};

struct GrpoResult {
  std::vector<GrpoStepStats> steps;
  double eval_accuracy = -1, eval_format = -1;
  std::string model_path;
  double rollout_share = 0;  // of the step time
};

GrpoResult run_grpo(const GrpoOptions& options);

}  // namespace ponder
