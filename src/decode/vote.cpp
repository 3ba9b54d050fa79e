// Answer voting: sample N paths, extract each path's answer (<answer>..</answer>, \boxed{..},
// else the last number), and vote: one vote per path (ties to the answer with the larger summed
// weight), or weighted by exp(mean token log-prob).
// The winner's paths come first (best score among them first), then the others.
#include <algorithm>
#include <cmath>

#include "decode/generate.h"
#include "decode/paths.h"

namespace ponder {

GenerateResult generate_vote(LanguageModel& lm, const GenerateRequest& r, const VoteOptions& o) {
  return select_vote(run_paths(lm, r.prompt, {.n = o.n_samples, .sampling = o.sampling, .seed = o.seed, .top_logprobs = r.top_logprobs}, r.stop), o);
}

GenerateResult select_vote(std::vector<Path> paths, const VoteOptions& o) {
  GenerateResult out{.paths = std::move(paths)};
  out.tokens_generated = count_tokens(out.paths);
  for (Path& p : out.paths) {
    finish_path(p);
    p.score = p.logprobs.empty() ? -INFINITY : p.cumulative_logprob / double(p.logprobs.size());
    if (p.extracted_answer.empty()) continue;
    auto it = std::find_if(out.votes.begin(), out.votes.end(), [&](const VoteEntry& v) { return v.answer == p.extracted_answer; });
    if (it == out.votes.end()) it = out.votes.insert(out.votes.end(), VoteEntry{.answer = p.extracted_answer});
    it->count += 1;
    it->weight += std::exp(p.score);
  }
  // Winner: most votes, ties to the more probable answer (the larger summed weight); or the
  // largest weight when weighted. Equal weights keep the order of first appearance.
  std::stable_sort(out.votes.begin(), out.votes.end(), [&](const VoteEntry& a, const VoteEntry& b) {
    if (!o.weighted && a.count != b.count) return a.count > b.count;
    return a.weight > b.weight;
  });
  if (!out.votes.empty()) out.winner = out.votes.front().answer;
  std::stable_sort(out.paths.begin(), out.paths.end(), [&](const Path& a, const Path& b) {
    const bool wa = !out.winner.empty() && a.extracted_answer == out.winner;
    const bool wb = !out.winner.empty() && b.extracted_answer == out.winner;
    return wa != wb ? wa : a.score > b.score;
  });
  return out;
}

}  // namespace ponder
