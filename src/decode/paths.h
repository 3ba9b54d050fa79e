#pragma once
// The loop every sampled strategy shares: prefill the prompt once, fork it into n paths, then
// one batched step per token for all paths still running. Each path has its own Sampler
// (greedy when the temperature is 0) and its own Rng, derived from (seed, path index).
#include <span>
#include <vector>

#include "decode/language_model.h"
#include "decode/options.h"
#include "decode/result.h"

namespace ponder {

struct PathsOptions {
  int n = 1;
  SamplingOptions sampling;
  uint64_t seed = 0;
  uint64_t path_offset = 0;  // path i uses Rng::derive(seed, path_offset + i)
  TokenCallback on_token;    // optional streaming
  float logprob_temperature = 1.0f;  // path log-probs from softmax(logits / this) (GRPO: the rollout temperature)
  int top_logprobs = 0;              // > 0: record this many alternatives per token (Path::top_logprobs)
};

// Paths in index order; score = cumulative log-prob. Text is filled; reasoning/answer are not.
std::vector<Path> run_paths(LanguageModel& lm, std::span<const int32_t> prompt, const PathsOptions& opt,
                            const StopOptions& stop);

// Several prompts at once: every prompt is prefilled in one step, then all paths of all prompts
// advance together, one batched step per token (how GRPO rollouts and evaluations run).
// Result [p] holds prompt p's paths in index order.
std::vector<std::vector<Path>> run_paths_batch(LanguageModel& lm, std::span<const std::vector<int32_t>> prompts,
                                               std::span<const PathsOptions> opts, const StopOptions& stop);

// Tokens in all the paths (what a strategy that returns every path it ran generated).
int64_t count_tokens(std::span<const Path> paths);
// The path's mean token log-prob (cumulative / tokens); -inf for an empty path. What vote weighs
// and verify breaks ties by.
double mean_token_logprob(const Path& p);

// log-softmax of logits / temperature at `id`. (V)
float token_logprob(std::span<const float> logits, int32_t id, float temperature = 1.0f);
// The k most probable ids with their token_logprob, most probable first, ties to the lower id. (V)
std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int k, float temperature = 1.0f);

}  // namespace ponder
