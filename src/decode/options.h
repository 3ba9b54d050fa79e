#pragma once
// One plain options struct per decoding strategy, validated once at the edge (validate()).
// The strategies are a closed set: a std::variant dispatched in one place (generate.cpp).
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "decode/result.h"
#include "decode/sampling.h"

namespace ponder {

// When a path ends, for every strategy.
struct StopOptions {
  int max_tokens = 128;            // new tokens per path (llama.cpp's -n)
  std::vector<std::string> stop;   // stop strings: the text ends before the first match
  int think_budget = -1;           // > = 0: after this many reasoning tokens force "</think>"
  void validate() const;
};

struct GreedyOptions {};

// n independent samples sharing the prompt (prefill once, fork n times). Path i draws from
// Rng::derive(seed, path_offset + i), so a path can be reproduced on its own.
struct SampleOptions {
  int n = 1;
  SamplingOptions sampling;
  uint64_t seed = 0;
  uint64_t path_offset = 0;
};

// Hugging Face transformers' beam search (num_return_sequences <= num_beams). Scores are
// sum(log-probs) / generated_length ** length_penalty, the length counting the EOS token.
enum class EarlyStopping { False, True, Never };
struct BeamOptions {
  int num_beams = 4;
  int num_return = 1;
  float length_penalty = 1.0f;
  EarlyStopping early_stopping = EarlyStopping::False;
  bool do_sample = false;    // sampling beams (transformers' beam sample)
  SamplingOptions sampling;  // temperature, top_k, top_p for sampling beams
  uint64_t seed = 0;
};

// Sample n_samples paths, return the n_return best by mean token log-prob (optionally over the
// answer after "</think>" only).
struct BestOfOptions {
  int n_samples = 4;
  int n_return = 1;
  bool score_answer_only = false;
  SamplingOptions sampling;
  uint64_t seed = 0;
};

// Sample n_samples paths, extract each path's answer and vote: one vote per path, or weighted by
// exp(mean token log-prob).
struct VoteOptions {
  int n_samples = 8;
  bool weighted = false;
  SamplingOptions sampling;
  uint64_t seed = 0;
};

// Sample n_samples paths, return the one the request's verifier scores highest (ties to the higher
// mean token log-prob, then the lower index): selection by a reward, as a reward model would,
// beside best-of (by probability) and vote (by count). Needs GenerateRequest::verifier.
struct VerifyOptions {
  int n_samples = 8;
  SamplingOptions sampling;
  uint64_t seed = 0;
};

// Monte Carlo tree search over reasoning steps (decode/mcts.cpp has the whole design). A step is
// the text up to and including step_delim; a node is a sequence forked from its parent at a step
// boundary; a simulation selects a leaf by PUCT, expands it into up to `expand` distinct child
// steps (K draws, repeats merged), rolls each new child out to an answer at
// rollout_temperature and backs the rollouts' values up (the verifier's score, or without one the
// agreement of the rollout's answer with the other rollouts'). Every `simulations` simulations the
// search commits to the root's most visited child and releases the other subtrees. Every token of
// every expansion and rollout counts against budget_tokens, which is never exceeded.
struct MctsOptions {
  int simulations = 8;             // per committed step
  int expand = 4;                  // K: child steps sampled per expansion
  float c_puct = 1.0f;             // exploration weight of PUCT
  SamplingOptions sampling;        // how child steps are drawn (temperature 1 by default)
  float rollout_temperature = 1.0f;
  std::string step_delim = "\n";   // a step ends with the token that completes this text
  int64_t budget_tokens = 1024;    // generated tokens, every expansion and rollout counted
  uint64_t seed = 0;
};

using Strategy = std::variant<GreedyOptions, SampleOptions, BeamOptions, BestOfOptions, VoteOptions, VerifyOptions,
                              MctsOptions>;

// A reward of a completion (the generated text, cut at a stop string, the end-of-sequence token not
// rendered): e.g. a task's rule-based accuracy reward. Finite; higher is better.
using Verifier = std::function<double(const std::string& completion)>;
// The class of an extracted, normalized answer for voting: answers with the same key are the same
// answer (e.g. two countdown expressions reaching the same value from the same numbers). Empty:
// the answer itself.
using AnswerKey = std::function<std::string(const std::string& answer)>;

// Called with the path as each sampled path chooses a token (streaming): the token is
// path.tokens.back(), its log-prob path.logprobs.back() (and top_logprobs.back() when recorded).
using TokenCallback = std::function<void(const Path&)>;

struct GenerateRequest {
  std::vector<int32_t> prompt;
  Strategy strategy;
  StopOptions stop;
  TokenCallback on_token;  // optional; sampled strategies only (beams are not final until the end)
  int top_logprobs = 0;    // > 0: record each token's most probable alternatives (Path::top_logprobs)
  Verifier verifier;       // verify: required; mcts: the rollout value (else answer agreement)
  AnswerKey answer_key;    // vote and mcts's answer agreement: which answers count as the same
};

// Throws InvalidArgument naming the field, the allowed range and the value.
void validate(const GenerateRequest& request, int32_t n_vocab);
// The new-token limit that keeps every path within the model's context: a path holds the prompt
// and its new tokens in at most n_ctx positions (the context length the model was trained with),
// so the limit is min(max_tokens, n_ctx - prompt_tokens). Throws InvalidArgument naming both
// counts when new tokens are asked for and the prompt alone fills the context.
int max_tokens_within_context(int max_tokens, int64_t prompt_tokens, int n_ctx);
// Paths a request runs at once (for sizing the KV pool; MCTS: its rollouts at once).
int n_paths(const Strategy& s);
std::string strategy_name(const Strategy& s);

}  // namespace ponder
