#include "decode/paths.h"

#include <deque>

#include "core/error.h"
#include "decode/path_text.h"
#include "kernels/activation.h"

namespace ponder {

float token_logprob(std::span<const float> logits, int32_t id) {
  return float(double(logits[size_t(id)]) - log_sum_exp(logits.data(), int64_t(logits.size())));
}

namespace {

struct RunningPath {
  SeqId seq = -1;
  Sampler sampler;
  PathText text;
  Path path;
  std::deque<int32_t> forced;  // tokens to emit instead of sampling (the thinking budget)
  int32_t last = -1;           // the token to feed at the next step
  bool done = false;
};

// Chooses, records and checks one token for a path from its logits row.
void advance(RunningPath& p, std::span<const float> logits, LanguageModel& lm, const StopOptions& stop,
             const TokenCallback& on_token) {
  int32_t tok;
  if (!p.forced.empty()) {
    tok = p.forced.front();
    p.forced.pop_front();
    p.sampler.accept(tok);
  } else {
    tok = p.sampler.sample(logits);
  }
  const float lp = token_logprob(logits, tok);
  p.path.tokens.push_back(tok);
  p.path.logprobs.push_back(lp);
  p.path.cumulative_logprob += lp;
  p.last = tok;
  if (on_token) on_token(p.path.index, tok);
  if (lm.is_eog(tok)) {
    p.path.finish = FinishReason::Eos;
    p.done = true;
    return;
  }
  if (p.text.append(lm.token_text(tok))) {
    p.path.finish = FinishReason::Stop;
    p.done = true;
    return;
  }
  if (int(p.path.tokens.size()) >= stop.max_tokens) {
    p.path.finish = FinishReason::Length;
    p.done = true;
    return;
  }
  if (p.forced.empty() && p.text.think_budget_spent())
    for (int32_t t : lm.tokenize(kForcedThinkEnd)) p.forced.push_back(t);
}

}  // namespace

std::vector<Path> run_paths(LanguageModel& lm, std::span<const int32_t> prompt, const PathsOptions& opt,
                            const StopOptions& stop) {
  if (prompt.empty()) throw InvalidArgument("the prompt has no tokens");
  const size_t V = size_t(lm.n_vocab());
  std::vector<RunningPath> paths;
  paths.reserve(size_t(opt.n));
  for (int i = 0; i < opt.n; ++i) {
    paths.push_back({.seq = -1, .sampler = Sampler(opt.sampling, Rng::derive(opt.seed, opt.path_offset + uint64_t(i))),
                     .text = PathText(stop), .path = {}, .forced = {}});
    paths.back().path.index = int64_t(opt.path_offset) + i;
    paths.back().sampler.set_prompt(prompt);
  }
  std::vector<float> logits;
  const SeqId root = lm.new_sequence();
  try {
    const StepInput prefill{.seq = root, .tokens = prompt};
    lm.step({&prefill, 1}, logits);
    const std::vector<float> first(logits.begin(), logits.begin() + ptrdiff_t(V));
    // Fork the prompt into every path (the last path keeps the root itself).
    for (int i = 0; i < opt.n; ++i) paths[size_t(i)].seq = i + 1 < opt.n ? lm.fork(root) : root;
    for (RunningPath& p : paths) {
      if (stop.max_tokens == 0) {
        p.done = true;
        continue;
      }
      advance(p, first, lm, stop, opt.on_token);
    }
    std::vector<StepInput> inputs;
    std::vector<RunningPath*> active;
    for (;;) {
      inputs.clear();
      active.clear();
      for (RunningPath& p : paths)
        if (!p.done) {
          inputs.push_back({.seq = p.seq, .tokens = {&p.last, 1}});
          active.push_back(&p);
        }
      if (inputs.empty()) break;
      lm.step(inputs, logits);
      for (size_t i = 0; i < active.size(); ++i)
        advance(*active[i], std::span<const float>(logits.data() + i * V, V), lm, stop, opt.on_token);
    }
  } catch (...) {
    for (RunningPath& p : paths)
      if (p.seq >= 0 && p.seq != root) lm.release(p.seq);
    lm.release(root);
    throw;
  }
  std::vector<Path> out;
  for (RunningPath& p : paths) {
    lm.release(p.seq);
    p.path.text = p.text.text();
    p.path.score = p.path.cumulative_logprob;
    out.push_back(std::move(p.path));
  }
  return out;
}

}  // namespace ponder
