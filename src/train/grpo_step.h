#pragma once
// The steps of a GRPO step, each a function the loop (train/grpo.cpp) calls in order:
//   rollout: every group of a generation batch in one batched decode (generate_rollouts);
//   score:   rewards, group filtering (dynamic sampling) and advantages (score_groups);
//   update:  mu optimizer steps on the step's rollouts (update_policy), each the gradient of the
//            whole step's loss accumulated micro-batch by micro-batch (policy_gradient).
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "decode/item_format.h"
#include "formats/tokenizer.h"
#include "model/model.h"
#include "tasks/reward.h"
#include "tasks/task.h"
#include "train/forward_train.h"
#include "train/grpo.h"

namespace ponder {

// One completion as training sees it.
struct Rollout {
  std::vector<int32_t> prompt, completion;  // completion: generated ids (EOS included when hit)
  std::vector<float> rollout_logp;          // (n completion tokens) the engine's log-probs
  std::vector<float> old_logp, ref_logp;    // (n completion tokens) set by the first iteration
  std::string text;                         // the completion's text
  float reward = 0, advantage = 0;
  float accuracy = 0, format = 0;           // the accuracy and strict-format rewards (metrics)
  bool truncated = false;                   // stopped by the length limit, not by EOS
  int group = 0;                            // the prompt's index in its generation batch
};

// Where prompts come from: item k of the stream, a pure function of (options, k).
struct PromptSource {
  TaskOptions task;              // train split
  std::vector<TaskItem> data;    // from --data (cycled)
  ItemFormat format;             // the policy's (decode/item_format.h)
  TaskItem at(int64_t k) const;  // rendered in `format`
};

// The seed of generation batch `batch` of step `step` (0-based).
uint64_t rollout_seed(uint64_t seed, int64_t step, int batch);

// G = o.num_generations completions of each item of [first, last) (all of them by default),
// group by group, from one batched decode of `engine` (sampling options of o; path log-probs at
// o.temperature). Rewards are not set. A group's completions depend only on (seed, its index in
// `items`) and the context limit, which comes from the longest prompt of all `items`: generating a
// generation batch in parts (one per rank) gives the completions of generating it whole.
std::vector<Rollout> generate_rollouts(const Model& engine, std::span<const TaskItem> items, const GrpoOptions& o,
                                       uint64_t seed, size_t first = 0, size_t last = SIZE_MAX);

// Rollouts as bytes and back (a data-parallel run gathers every rank's groups, train/dist.h).
// unpack_rollouts appends; FormatError on bytes pack_rollouts did not write.
std::string pack_rollouts(std::span<const Rollout> rollouts);
void unpack_rollouts(const std::string& bytes, std::vector<Rollout>& out);

// Sets each rollout's reward (items[rollout.group] is its item).
void score_rollouts(std::span<Rollout> rollouts, std::span<const TaskItem> items, const RewardSpec& spec);

// The rollout metrics of a step (reward mean and std, accuracy, format rate, completion length)
// over every rollout it generated.
void rollout_stats(std::span<const Rollout> generated, GrpoStepStats& st);

// Appends to `kept` the groups of `rollouts` to train on: all of them, or with dynamic sampling
// those whose rewards are not all equal, until `kept` holds o.prompts_per_step groups.
void keep_groups(std::vector<Rollout>& rollouts, const GrpoOptions& o, std::vector<Rollout>& kept);

// Group-normalised advantages of whole groups (o.num_generations consecutive rollouts each).
void set_advantages(std::span<Rollout> batch, const GrpoOptions& o);

// The groups of a generation batch of n groups that this rank rolls out: a contiguous share.
std::pair<size_t, size_t> my_groups(size_t n);

// Scratch of the update, reused step after step.
struct UpdateScratch {
  Activations acts;
  std::vector<float> logp, dlogp, grads;
};

// One iteration's gradient of the whole step's loss over `batch` into s.grads (the parameters'
// layout), computed o.micro_batch sequences at a time and normalised by step-wide counts, so it
// is the gradient of the whole batch at once. Under mpirun micro-batch a is computed by rank
// a % R and the sum is the one process's (train/dist.h); only that rank sets its rollouts'
// old_logp and ref_logp. Iteration 0 records each rollout's old_logp (the
// current log-probs: the ratio is 1, TRL's detached old log-probs) and, with a reference (beta
// > 0), ref_logp; later iterations read them. Returns the step's loss and metrics.
// With lora the policy is the model plus those adapters: s.grads has the adapters' layout.
LossStats policy_gradient(const TrainModel& policy, const TrainModel* reference, std::span<Rollout> batch,
                          int iteration, const GrpoOptions& o, UpdateScratch& s, const LoraAdapters* lora = nullptr);

struct UpdateStats {
  double loss = 0, kl = 0, clip_fraction = 0, grad_norm = 0;  // averaged over the iterations
  double rollout_vs_train_logp = 0;  // max |rollout_logp - old_logp| (over every rank's rollouts)
};

// o.num_iterations AdamW steps at learning rate lr on the step's rollouts.
// With lora only the adapters are updated (the policy's weights stay as they are).
UpdateStats update_policy(TrainModel& policy, const TrainModel* reference, std::span<Rollout> batch,
                          const GrpoOptions& o, AdamWState& adam, float lr, UpdateScratch& s,
                          LoraAdapters* lora = nullptr);

}  // namespace ponder
