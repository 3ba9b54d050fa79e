// Beam search as a strategy (the search itself is in beam.cpp).
#include "decode/beam.h"
#include "decode/generate.h"

namespace ponder {

GenerateResult generate_beam(LanguageModel& lm, const GenerateRequest& r, const BeamOptions& o) {
  GenerateResult out;
  out.paths = beam_search(lm, r.prompt, o, r.stop, &out.tokens_generated);
  return out;
}

}  // namespace ponder
