// Best-of-N: sample N paths, keep the n best by length-normalised log-prob (mean token log-prob),
// optionally over the answer after "</think>" only.
#include <algorithm>

#include "decode/generate.h"
#include "decode/paths.h"

namespace ponder {

namespace {
// Mean log-prob of the tokens from `first` on; -inf when there are none.
double mean_logprob(const Path& p, size_t first) {
  if (first >= p.logprobs.size()) return -INFINITY;
  double s = 0;
  for (size_t i = first; i < p.logprobs.size(); ++i) s += p.logprobs[i];
  return s / double(p.logprobs.size() - first);
}

// Index of the first token after the one that completes "</think>", or the path length.
size_t answer_start(const Path& p, const LanguageModel& lm) {
  std::string text;
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    text += lm.token_text(p.tokens[i]);
    if (text.find("</think>") != std::string::npos) return i + 1;
  }
  return p.tokens.size();
}
}  // namespace

GenerateResult generate_best_of(LanguageModel& lm, const GenerateRequest& r, const BestOfOptions& o) {
  return select_best_of(lm, run_paths(lm, r.prompt, {.n = o.n_samples, .sampling = o.sampling, .seed = o.seed, .top_logprobs = r.top_logprobs}, r.stop), o);
}

GenerateResult select_best_of(const LanguageModel& lm, std::vector<Path> paths, const BestOfOptions& o) {
  GenerateResult out{.paths = std::move(paths)};
  out.tokens_generated = count_tokens(out.paths);  // the paths not returned included
  for (Path& p : out.paths) p.score = mean_logprob(p, o.score_answer_only ? answer_start(p, lm) : 0);
  std::stable_sort(out.paths.begin(), out.paths.end(), [](const Path& a, const Path& b) { return a.score > b.score; });
  out.paths.resize(size_t(o.n_return));
  return out;
}

}  // namespace ponder
