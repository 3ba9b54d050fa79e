#pragma once
// Beam search with Hugging Face transformers' current semantics (the vectorized
// GenerationMixin._beam_search): each step keeps the top max(2, 1 + n_eos) * num_beams of all
// beam x vocabulary continuations; a continuation that ends (EOS, a stop string or the length
// limit) becomes a finished hypothesis only if it ranks within the first num_beams, scored
// sum(log-probs) / generated_length ** length_penalty (the length counts the EOS token); the
// next running beams are the best num_beams continuations that did not end; early_stopping
// true / false / "never" decide when to stop as transformers does.
#include <span>
#include <vector>

#include "decode/language_model.h"
#include "decode/options.h"
#include "decode/result.h"

namespace ponder {

// The num_return best finished hypotheses, best first. tokens_generated (when given) receives
// every token the search produced: each step's running beams' new tokens, returned or not.
// Sampling beams may keep fewer than num_beams running beams when fewer continuations have a
// non-zero probability (a beam whose score is excluded has none).
std::vector<Path> beam_search(LanguageModel& lm, std::span<const int32_t> prompt, const BeamOptions& opt,
                              const StopOptions& stop, int64_t* tokens_generated = nullptr);

}  // namespace ponder
