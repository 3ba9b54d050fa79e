#pragma once
// The plots of a training run, drawn from its OUT/metrics.jsonl (one JSON object per line), so a
// resumed run plots the whole run. train/ writes the metrics; the CLI and the demo call these.
//
// GRPO (keys step, reward_mean, reward_std, accuracy, format_rate, completion_length, loss, kl,
// clip_fraction, grad_norm, rollout_seconds, train_seconds, groups_used, groups_generated; a last
// line with eval_accuracy, eval_format):
//   grpo_reward.svg  reward (raw and smoothed) above the rates (accuracy, format; held-out markers)
//   grpo_length.svg  mean completion length in tokens
//   grpo_train.svg   loss, KL, clip fraction, gradient norm
//   grpo_time.svg    rollout and training seconds per step; groups used (and generated)
// SFT (keys step, loss, lr, grad_norm; eval lines with eval_accuracy, eval_format):
//   sft_loss.svg     loss (log scale, raw and smoothed) above the learning rate
//   sft_eval.svg     held-out greedy accuracy and format rate (only when evaluated)
// Missing keys are left out of the plots; a line that is not JSON is a FormatError naming the
// file and line.
#include <string>

namespace ponder {

// Write the files above into out_dir; FormatError when OUT/metrics.jsonl is missing or bad.
void write_grpo_plots(const std::string& out_dir);
void write_sft_plots(const std::string& out_dir);

}  // namespace ponder
