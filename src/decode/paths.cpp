#include "decode/paths.h"

#include <algorithm>
#include <cmath>
#include <deque>

#include "core/error.h"
#include "decode/path_text.h"
#include "kernels/activation.h"

namespace ponder {

float token_logprob(std::span<const float> logits, int32_t id, float temperature) {
  if (temperature == 1.0f) return float(double(logits[size_t(id)]) - log_sum_exp(logits.data(), int64_t(logits.size())));
  thread_local std::vector<float> scaled;
  scaled.resize(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) scaled[i] = logits[i] / temperature;
  return float(double(scaled[size_t(id)]) - log_sum_exp(scaled.data(), int64_t(scaled.size())));
}

std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int k, float temperature) {
  std::vector<int32_t> ids(logits.size());
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t(i);
  k = std::min(k, int(ids.size()));
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](int32_t a, int32_t b) {
    return logits[size_t(a)] != logits[size_t(b)] ? logits[size_t(a)] > logits[size_t(b)] : a < b;
  });
  std::vector<std::pair<int32_t, float>> out;
  for (int i = 0; i < k; ++i) out.emplace_back(ids[size_t(i)], token_logprob(logits, ids[size_t(i)], temperature));
  return out;
}

int64_t count_tokens(std::span<const Path> paths) {
  int64_t n = 0;
  for (const Path& p : paths) n += int64_t(p.tokens.size());
  return n;
}

double mean_token_logprob(const Path& p) {
  return p.logprobs.empty() ? -INFINITY : p.cumulative_logprob / double(p.logprobs.size());
}

namespace {

struct RunningPath {
  SeqId seq = -1;
  float logprob_temperature = 1.0f;
  int top_logprobs = 0;
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
  if (p.forced.empty() && p.text.think_budget_spent())
    for (int32_t t : lm.tokenize(kForcedThinkEnd)) p.forced.push_back(t);
  int32_t tok;
  if (!p.forced.empty()) {
    tok = p.forced.front();
    p.forced.pop_front();
    p.sampler.accept(tok);
  } else {
    tok = p.sampler.sample(logits);
  }
  const float lp = token_logprob(logits, tok, p.logprob_temperature);
  if (p.top_logprobs > 0) p.path.top_logprobs.push_back(top_logprobs(logits, p.top_logprobs, p.logprob_temperature));
  p.path.tokens.push_back(tok);
  p.path.logprobs.push_back(lp);
  p.path.cumulative_logprob += lp;
  p.last = tok;
  if (on_token) on_token(p.path);
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
}

}  // namespace

std::vector<std::vector<Path>> run_paths_batch(LanguageModel& lm, std::span<const std::vector<int32_t>> prompts,
                                               std::span<const PathsOptions> opts, const StopOptions& stop) {
  if (prompts.size() != opts.size()) throw InvalidArgument("run_paths_batch: one options entry per prompt");
  const size_t V = size_t(lm.n_vocab());
  std::vector<RunningPath> paths;
  std::vector<size_t> first_path(prompts.size() + 1, 0);
  for (size_t q = 0; q < prompts.size(); ++q) {
    if (prompts[q].empty()) throw InvalidArgument("prompt " + std::to_string(q) + " has no tokens");
    first_path[q + 1] = first_path[q] + size_t(opts[q].n);
  }
  paths.reserve(first_path.back());
  for (size_t q = 0; q < prompts.size(); ++q)
    for (int i = 0; i < opts[q].n; ++i) {
      const PathsOptions& o = opts[q];
      paths.push_back({.seq = -1, .sampler = Sampler(o.sampling, Rng::derive(o.seed, o.path_offset + uint64_t(i))),
                       .text = PathText(stop), .path = {}, .forced = {}});
      paths.back().path.index = int64_t(o.path_offset) + i;
      paths.back().logprob_temperature = o.logprob_temperature;
      paths.back().top_logprobs = o.top_logprobs;
      paths.back().sampler.set_prompt(prompts[q]);
    }
  std::vector<float> logits;
  std::vector<SeqId> roots;
  auto release_all = [&] {
    for (RunningPath& p : paths)
      if (p.seq >= 0 && std::find(roots.begin(), roots.end(), p.seq) == roots.end()) lm.release(p.seq);
    for (SeqId r : roots) lm.release(r);
  };
  try {
    std::vector<StepInput> inputs;
    for (size_t q = 0; q < prompts.size(); ++q) {
      roots.push_back(lm.new_sequence());
      inputs.push_back({.seq = roots.back(), .tokens = prompts[q]});
    }
    lm.step(inputs, logits);  // every prompt in one step
    const std::vector<float> first = logits;
    for (size_t q = 0; q < prompts.size(); ++q) {
      const int n = opts[q].n;
      // Fork the prompt into its paths; the last path keeps the root itself.
      for (int i = 0; i < n; ++i) paths[first_path[q] + size_t(i)].seq = i + 1 < n ? lm.fork(roots[q]) : roots[q];
      if (n == 0) {
        lm.release(roots[q]);
        roots[q] = -1;
      }
    }
    std::erase(roots, -1);
    roots.clear();  // from here every root is owned by its last path
    for (size_t q = 0; q < prompts.size(); ++q)
      for (size_t i = first_path[q]; i < first_path[q + 1]; ++i) {
        RunningPath& p = paths[i];
        if (stop.max_tokens == 0) {
          p.done = true;
          continue;
        }
        advance(p, std::span<const float>(first.data() + q * V, V), lm, stop, opts[q].on_token);
      }
    std::vector<RunningPath*> active;
    std::vector<const TokenCallback*> callbacks;
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
      for (size_t i = 0; i < active.size(); ++i) {
        const size_t pi = size_t(active[i] - paths.data());
        const size_t q = size_t(std::upper_bound(first_path.begin(), first_path.end(), pi) - first_path.begin()) - 1;
        advance(*active[i], std::span<const float>(logits.data() + i * V, V), lm, stop, opts[q].on_token);
      }
    }
  } catch (...) {
    release_all();
    throw;
  }
  std::vector<std::vector<Path>> out(prompts.size());
  for (size_t q = 0; q < prompts.size(); ++q)
    for (size_t i = first_path[q]; i < first_path[q + 1]; ++i) {
      RunningPath& p = paths[i];
      lm.release(p.seq);
      p.path.text = p.text.text();
      p.path.score = p.path.cumulative_logprob;
      out[q].push_back(std::move(p.path));
    }
  return out;
}

std::vector<Path> run_paths(LanguageModel& lm, std::span<const int32_t> prompt, const PathsOptions& opt,
                            const StopOptions& stop) {
  const std::vector<int32_t> one(prompt.begin(), prompt.end());
  return std::move(run_paths_batch(lm, {&one, 1}, {&opt, 1}, stop)[0]);
}

}  // namespace ponder
