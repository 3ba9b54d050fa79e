// Answer voting: sample N paths, extract each path's answer (<answer>..</answer>, \boxed{..},
// else the last number), and vote: one vote per path (ties to the answer with the larger summed
// weight), or weighted by exp(mean token log-prob). Answers of one class (GenerateRequest::
// answer_key, e.g. countdown expressions with the same value) vote together, under the first.
// The winner's paths come first (best score among them first), then the others.
#include <algorithm>
#include <cmath>

#include "decode/generate.h"
#include "decode/paths.h"

namespace ponder {

GenerateResult generate_vote(LanguageModel& lm, const GenerateRequest& r, const VoteOptions& o) {
  return select_vote(run_paths(lm, r.prompt, {.n = o.n_samples, .sampling = o.sampling, .seed = o.seed, .top_logprobs = r.top_logprobs}, r.stop), o, r.answer_key);
}

std::string answer_class(const AnswerKey& key, const std::string& answer) { return key ? key(answer) : answer; }

GenerateResult select_vote(std::vector<Path> paths, const VoteOptions& o, const AnswerKey& key) {
  GenerateResult out{.paths = std::move(paths)};
  out.tokens_generated = count_tokens(out.paths);
  std::vector<std::string> classes;  // per vote entry: its answers' class
  for (Path& p : out.paths) {
    finish_path(p);
    p.score = mean_token_logprob(p);
    if (p.extracted_answer.empty()) continue;
    const std::string c = answer_class(key, p.extracted_answer);
    const size_t at = size_t(std::find(classes.begin(), classes.end(), c) - classes.begin());
    if (at == classes.size()) {
      classes.push_back(c);
      out.votes.push_back(VoteEntry{.answer = p.extracted_answer});  // the class's first answer stands for it
    }
    out.votes[at].count += 1;
    out.votes[at].weight += std::exp(p.score);
  }
  // Winner: most votes, ties to the more probable answer (the larger summed weight); or the
  // largest weight when weighted. Equal weights keep the order of first appearance.
  std::stable_sort(out.votes.begin(), out.votes.end(), [&](const VoteEntry& a, const VoteEntry& b) {
    if (!o.weighted && a.count != b.count) return a.count > b.count;
    return a.weight > b.weight;
  });
  if (!out.votes.empty()) out.winner = out.votes.front().answer;
  // The winner's paths first (each path's class computed once), each group by score.
  const std::string winner_class = out.winner.empty() ? "" : answer_class(key, out.winner);
  const auto by_score = [](const Path& a, const Path& b) { return a.score > b.score; };
  const auto split = std::stable_partition(out.paths.begin(), out.paths.end(), [&](const Path& p) {
    return !out.winner.empty() && !p.extracted_answer.empty() && answer_class(key, p.extracted_answer) == winner_class;
  });
  std::stable_sort(out.paths.begin(), split, by_score);
  std::stable_sort(split, out.paths.end(), by_score);
  return out;
}

}  // namespace ponder
