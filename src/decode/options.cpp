#include "decode/options.h"

#include <cmath>
#include <iterator>

#include "core/error.h"
#include "decode/result.h"

namespace ponder {

namespace {
void require(bool ok, const std::string& field, const std::string& range, const std::string& value) {
  if (!ok) throw InvalidArgument(field + " must be " + range + ", got " + value);
}
std::string str(double v) {
  std::string s = std::to_string(v);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}
}  // namespace

void StopOptions::validate() const {
  require(max_tokens >= 0, "max_tokens", ">= 0", std::to_string(max_tokens));
  require(think_budget >= -1, "think_budget", ">= 0 (or -1 for none)", std::to_string(think_budget));
  for (const std::string& s : stop) require(!s.empty(), "stop", "non-empty strings", "\"\"");
}

int max_tokens_within_context(int max_tokens, int64_t prompt_tokens, int n_ctx) {
  if (prompt_tokens + max_tokens <= n_ctx) return max_tokens;
  if (prompt_tokens >= n_ctx)
    throw InvalidArgument("the prompt has " + std::to_string(prompt_tokens) + " tokens and the model's context is " +
                          std::to_string(n_ctx) + " positions (context_length): no room for new tokens; shorten the prompt");
  return int(n_ctx - prompt_tokens);
}

int n_paths(const Strategy& s) {
  return std::visit(
      [](const auto& o) -> int {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, GreedyOptions>) return 1;
        else if constexpr (std::is_same_v<T, SampleOptions>) return o.n;
        else if constexpr (std::is_same_v<T, BeamOptions>) return o.num_beams;
        else if constexpr (std::is_same_v<T, MctsOptions>) return o.expand;
        else return o.n_samples;
      },
      s);
}

std::string strategy_name(const Strategy& s) {
  static const char* names[] = {"greedy", "sample", "beam", "best-of", "vote", "verify", "mcts"};
  static_assert(std::size(names) == std::variant_size_v<Strategy>);
  return names[s.index()];
}

void validate(const GenerateRequest& r, int32_t n_vocab) {
  r.stop.validate();
  if (r.prompt.empty()) throw InvalidArgument("the prompt has no tokens (empty text and the model adds no BOS)");
  for (int32_t t : r.prompt) require(t >= 0 && t < n_vocab, "prompt token", "in [0, " + std::to_string(n_vocab) + ")", std::to_string(t));
  require(r.top_logprobs >= 0 && r.top_logprobs <= 20, "top_logprobs", "in [0, 20]", std::to_string(r.top_logprobs));
  std::visit(
      [&](const auto& o) {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, SampleOptions>) {
          require(o.n >= 1 && o.n <= 1024, "n (paths)", "in [1, 1024]", std::to_string(o.n));
          o.sampling.validate(n_vocab);
        } else if constexpr (std::is_same_v<T, BeamOptions>) {
          require(o.num_beams >= 1 && o.num_beams <= 256, "num_beams", "in [1, 256]", std::to_string(o.num_beams));
          require(o.num_return >= 1 && o.num_return <= o.num_beams, "num_return_sequences",
                  "in [1, num_beams = " + std::to_string(o.num_beams) + "]", std::to_string(o.num_return));
          require(std::isfinite(o.length_penalty), "length_penalty", "finite", str(o.length_penalty));
          require(r.stop.think_budget < 0, "think_budget", "unset with beam search (beams are ranked, not forced)",
                  std::to_string(r.stop.think_budget));
          const SamplingOptions& s = o.sampling;
          require(s.repetition_penalty == 1.0f && s.frequency_penalty == 0 && s.presence_penalty == 0 && s.logit_bias.empty(),
                  "penalties and logit bias", "off with beam search", "set");
          if (o.do_sample) s.validate(n_vocab);
          require(!o.do_sample || s.temperature > 0, "temperature", "> 0 for sampling beams", str(s.temperature));
        } else if constexpr (std::is_same_v<T, BestOfOptions>) {
          require(o.n_samples >= 1 && o.n_samples <= 1024, "samples (best-of N)", "in [1, 1024]", std::to_string(o.n_samples));
          require(o.n_return >= 1 && o.n_return <= o.n_samples, "num_return",
                  "in [1, samples = " + std::to_string(o.n_samples) + "]", std::to_string(o.n_return));
          o.sampling.validate(n_vocab);
        } else if constexpr (std::is_same_v<T, VoteOptions>) {
          require(o.n_samples >= 1 && o.n_samples <= 1024, "samples (vote)", "in [1, 1024]", std::to_string(o.n_samples));
          o.sampling.validate(n_vocab);
        } else if constexpr (std::is_same_v<T, VerifyOptions>) {
          require(o.n_samples >= 1 && o.n_samples <= 1024, "samples (verify)", "in [1, 1024]", std::to_string(o.n_samples));
          require(bool(r.verifier), "verifier", "given for verify (a task or data with answers to check against)", "none");
          o.sampling.validate(n_vocab);
        } else if constexpr (std::is_same_v<T, MctsOptions>) {
          require(o.simulations >= 1 && o.simulations <= 100000, "simulations", "in [1, 100000]", std::to_string(o.simulations));
          require(o.expand >= 1 && o.expand <= 64, "expand (K)", "in [1, 64]", std::to_string(o.expand));
          require(std::isfinite(o.c_puct) && o.c_puct >= 0, "c_puct", "finite and >= 0", str(o.c_puct));
          require(std::isfinite(o.rollout_temperature) && o.rollout_temperature >= 0, "rollout_temperature",
                  "finite and >= 0", str(o.rollout_temperature));
          require(!o.step_delim.empty(), "step_delim", "a non-empty text", "\"\"");
          require(o.budget_tokens >= 1 && o.budget_tokens <= (int64_t(1) << 24), "budget_tokens", "in [1, 16777216]",
                  std::to_string(o.budget_tokens));
          require(o.sampling.temperature > 0, "temperature", "> 0 for MCTS expansion (children are sampled)",
                  str(o.sampling.temperature));
          require(r.stop.think_budget < 0, "think_budget", "unset with MCTS", std::to_string(r.stop.think_budget));
          o.sampling.validate(n_vocab);
        }
      },
      r.strategy);
}

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::Eos: return "eos";
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
  }
  return "length";
}

}  // namespace ponder
