// Greedy: one path, argmax over the raw logits (ties to the lowest id).
#include "decode/generate.h"
#include "decode/paths.h"

namespace ponder {

GenerateResult generate_greedy(LanguageModel& lm, const GenerateRequest& r, const GreedyOptions&) {
  PathsOptions p;
  p.sampling.temperature = 0;
  p.on_token = r.on_token;
  p.top_logprobs = r.top_logprobs;
  GenerateResult out{.paths = run_paths(lm, r.prompt, p, r.stop)};
  out.tokens_generated = count_tokens(out.paths);
  return out;
}

}  // namespace ponder
