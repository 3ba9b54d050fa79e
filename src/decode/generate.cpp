#include "decode/generate.h"

#include "decode/reasoning.h"
#include "tasks/answer.h"

namespace ponder {

void finish_path(Path& p) {
  const ReasoningSplit split = split_reasoning(p.text);
  p.reasoning = split.reasoning;
  p.answer = split.answer;
  p.extracted_answer = final_answer(split, p.text);
}

GenerateResult generate(LanguageModel& lm, const GenerateRequest& request) {
  validate(request, lm.n_vocab());
  GenerateResult r = std::visit(
      [&](const auto& o) -> GenerateResult {
        using T = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<T, GreedyOptions>) return generate_greedy(lm, request, o);
        else if constexpr (std::is_same_v<T, SampleOptions>) return generate_sample(lm, request, o);
        else if constexpr (std::is_same_v<T, BeamOptions>) return generate_beam(lm, request, o);
        else if constexpr (std::is_same_v<T, BestOfOptions>) return generate_best_of(lm, request, o);
        else if constexpr (std::is_same_v<T, VoteOptions>) return generate_vote(lm, request, o);
        else if constexpr (std::is_same_v<T, VerifyOptions>) return generate_verify(lm, request, o);
        else return generate_mcts(lm, request, o);
      },
      request.strategy);
  for (Path& p : r.paths)
    if (p.reasoning.empty() && p.answer.empty()) finish_path(p);
  return r;
}

}  // namespace ponder
