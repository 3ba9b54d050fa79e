// Verify-of-N: sample N paths and keep the one the verifier (the task's reward, as a reward model
// would) scores highest; ties go to the higher mean token log-prob, then to the lower path index.
// Every path is returned, best first, each with its verifier score.
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "decode/generate.h"
#include "decode/paths.h"

namespace ponder {

double verifier_score(const Verifier& verifier, const std::string& completion) {
  const double v = verifier(completion);
  if (!std::isfinite(v)) throw InvalidArgument("the verifier returned " + std::to_string(v) + ": it must be finite");
  return v;
}

GenerateResult generate_verify(LanguageModel& lm, const GenerateRequest& r, const VerifyOptions& o) {
  return select_verify(run_paths(lm, r.prompt, {.n = o.n_samples, .sampling = o.sampling, .seed = o.seed, .top_logprobs = r.top_logprobs}, r.stop), r.verifier);
}

GenerateResult select_verify(std::vector<Path> paths, const Verifier& verifier) {
  if (!verifier) throw InvalidArgument("verify needs a verifier (a task, or data with answers to check against)");
  std::vector<size_t> order(paths.size());
  std::vector<std::pair<double, double>> key;  // (verifier score, mean token log-prob) per path
  for (size_t i = 0; i < paths.size(); ++i) {
    Path& p = paths[i];
    finish_path(p);
    p.score = verifier_score(verifier, p.text);
    key.emplace_back(p.score, mean_token_logprob(p));
    order[i] = i;
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key[a] > key[b]; });
  GenerateResult out;
  out.tokens_generated = count_tokens(paths);
  for (size_t i : order) out.paths.push_back(std::move(paths[i]));
  return out;
}

}  // namespace ponder
