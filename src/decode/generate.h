#pragma once
// The one place the strategies are dispatched: validate the request, run the strategy, finish
// every path (reasoning/answer split, extracted answer).
#include "decode/language_model.h"
#include "decode/options.h"
#include "decode/result.h"

namespace ponder {

GenerateResult generate(LanguageModel& lm, const GenerateRequest& request);

// Each strategy, a free function in its own file.
GenerateResult generate_greedy(LanguageModel& lm, const GenerateRequest& r, const GreedyOptions& o);
GenerateResult generate_sample(LanguageModel& lm, const GenerateRequest& r, const SampleOptions& o);
GenerateResult generate_beam(LanguageModel& lm, const GenerateRequest& r, const BeamOptions& o);
GenerateResult generate_best_of(LanguageModel& lm, const GenerateRequest& r, const BestOfOptions& o);
GenerateResult generate_vote(LanguageModel& lm, const GenerateRequest& r, const VoteOptions& o);

// Fills reasoning, answer and extracted_answer from the path's text.
void finish_path(Path& p);

}  // namespace ponder
