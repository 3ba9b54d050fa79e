// n sampled paths from one prefill, best (highest cumulative log-prob) first.
#include <algorithm>

#include "decode/generate.h"
#include "decode/paths.h"

namespace ponder {

GenerateResult generate_sample(LanguageModel& lm, const GenerateRequest& r, const SampleOptions& o) {
  GenerateResult out{.paths = run_paths(lm, r.prompt,
                                        {.n = o.n, .sampling = o.sampling, .seed = o.seed, .path_offset = o.path_offset,
                                         .on_token = r.on_token, .top_logprobs = r.top_logprobs},
                                        r.stop)};
  out.tokens_generated = count_tokens(out.paths);
  std::stable_sort(out.paths.begin(), out.paths.end(), [](const Path& a, const Path& b) { return a.score > b.score; });
  return out;
}

}  // namespace ponder
