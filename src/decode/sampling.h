#pragma once
// Token choice: a chain of small stages over one Candidates type, then one picker. This is the
// only place a token is chosen. The stages run in this fixed order:
//
//   1. logit bias          logit[id] += bias                          (OpenAI logit_bias)
//   2. repetition penalty  for ids in prompt or generated text:      (Hugging Face rule)
//                          logit > 0 ? logit / p : logit * p
//   3. frequency/presence  logit -= frequency * count_in_generated    (OpenAI rule; counts over
//                                  + presence * (count > 0)            generated tokens only)
//   4. temperature         logit /= T; T == 0 means greedy (argmax over the result of 1-3)
//   5. top-k               keep the k largest (0 = off)
//   6. top-p               keep the smallest set, largest first, whose probability mass >= p
//   7. min-p               drop tokens with p < min_p * p_max
//   then a seeded draw from the softmax of what is left (or argmax when greedy).
//
// Ties are broken towards the lower token id everywhere (argmax, sorting), so results do not
// depend on the sort algorithm.
#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/rng.h"

namespace ponder {

struct SamplingOptions {
  float temperature = 1.0f;        // 0: greedy
  int top_k = 0;                   // 0: off
  float top_p = 1.0f;              // 1: off; in (0, 1]
  float min_p = 0.0f;              // 0: off; in [0, 1]
  float repetition_penalty = 1.0f; // 1: off; > 0
  float frequency_penalty = 0.0f;  // in [-2, 2] as OpenAI
  float presence_penalty = 0.0f;   // in [-2, 2]
  std::vector<std::pair<int32_t, float>> logit_bias;  // (token id, bias)

  // Throws InvalidArgument naming the field, the allowed range and the value given.
  void validate(int32_t n_vocab) const;
  bool greedy() const { return temperature == 0.0f; }
};

struct Candidate {
  int32_t id;
  float logit;
  float p = 0;  // probability after softmax over the remaining candidates
};

// The working set of candidates for one choice. Stages shrink and reorder it.
struct Candidates {
  std::vector<Candidate> items;
  bool sorted = false;  // items sorted by logit descending (ties: lower id first)

  void assign(std::span<const float> logits);  // all ids, in id order
  void sort_desc();                            // sorts unless already sorted
  void softmax();                              // fills p over the items (numerically stable)
};

// Token counts of a sequence, for the penalties.
struct TokenCounts {
  std::unordered_map<int32_t, int32_t> prompt;     // id -> occurrences in the prompt
  std::unordered_map<int32_t, int32_t> generated;  // id -> occurrences in the generated text
  void add_prompt(std::span<const int32_t> ids);
  void add_generated(int32_t id);
};

// The stages, each usable on its own (the tests check each against hand-computed numbers).
void apply_logit_bias(Candidates& c, std::span<const std::pair<int32_t, float>> bias);
void apply_repetition_penalty(Candidates& c, const TokenCounts& counts, float penalty);
void apply_frequency_presence(Candidates& c, const TokenCounts& counts, float frequency, float presence);
void apply_temperature(Candidates& c, float temperature);  // temperature > 0
void apply_top_k(Candidates& c, int k);
void apply_top_p(Candidates& c, float p);
void apply_min_p(Candidates& c, float min_p);

// The pickers. pick_argmax: the largest logit, lowest id on ties. pick_draw: a draw from the
// softmax of the candidates using one rng.uniform().
int32_t pick_argmax(const Candidates& c);
int32_t pick_draw(Candidates& c, Rng& rng);

// One path's sampler: the options, its own Rng and its token counts.
class Sampler {
 public:
  Sampler(SamplingOptions opt, Rng rng);

  // Call once with the prompt before the first sample().
  void set_prompt(std::span<const int32_t> prompt);
  // Runs stages 1-7 on the raw logits (V) and picks the next token; records it in the counts.
  int32_t sample(std::span<const float> logits);
  // Records a token chosen elsewhere (e.g. forced), so the penalties see it.
  void accept(int32_t id);

  const SamplingOptions& options() const { return opt_; }
  Rng& rng() { return rng_; }

 private:
  // Stages 1-3 (and the scratch copy) on the raw logits.
  void penalize(std::span<const float> logits);

  SamplingOptions opt_;
  Rng rng_;
  TokenCounts counts_;
  Candidates cand_;
};

}  // namespace ponder
