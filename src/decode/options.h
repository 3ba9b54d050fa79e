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

using Strategy = std::variant<GreedyOptions, SampleOptions, BeamOptions, BestOfOptions, VoteOptions>;

// Called with the path as each sampled path chooses a token (streaming): the token is
// path.tokens.back(), its log-prob path.logprobs.back() (and top_logprobs.back() when recorded).
using TokenCallback = std::function<void(const Path&)>;

struct GenerateRequest {
  std::vector<int32_t> prompt;
  Strategy strategy;
  StopOptions stop;
  TokenCallback on_token;  // optional; sampled strategies only (beams are not final until the end)
  int top_logprobs = 0;    // > 0: record each token's most probable alternatives (Path::top_logprobs)
};

// Throws InvalidArgument naming the field, the allowed range and the value.
void validate(const GenerateRequest& request, int32_t n_vocab);
// The new-token limit that keeps every path within the model's context: a path holds the prompt
// and its new tokens in at most n_ctx positions (the context length the model was trained with),
// so the limit is min(max_tokens, n_ctx - prompt_tokens). Throws InvalidArgument naming both
// counts when new tokens are asked for and the prompt alone fills the context.
int max_tokens_within_context(int max_tokens, int64_t prompt_tokens, int n_ctx);
// Paths a request runs at once (for sizing the KV pool).
int n_paths(const Strategy& s);
std::string strategy_name(const Strategy& s);

}  // namespace ponder
