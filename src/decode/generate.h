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
GenerateResult generate_verify(LanguageModel& lm, const GenerateRequest& r, const VerifyOptions& o);
GenerateResult generate_mcts(LanguageModel& lm, const GenerateRequest& r, const MctsOptions& o);

// The selection rules of best-of, vote and verify over paths already sampled (run_paths with the
// strategy's n_samples, sampling and seed): generate_X is run_paths then select_X, and an
// evaluation that samples many prompts in one batch applies the same rule to each prompt's paths.
GenerateResult select_best_of(const LanguageModel& lm, std::vector<Path> paths, const BestOfOptions& o);
GenerateResult select_vote(std::vector<Path> paths, const VoteOptions& o, const AnswerKey& key = {});
// key(answer), or the answer itself when key is empty.
std::string answer_class(const AnswerKey& key, const std::string& answer);
GenerateResult select_verify(std::vector<Path> paths, const Verifier& verifier);

// Fills reasoning, answer and extracted_answer from the path's text.
void finish_path(Path& p);
// verifier(completion), checked to be finite (InvalidArgument otherwise).
double verifier_score(const Verifier& verifier, const std::string& completion);

}  // namespace ponder
