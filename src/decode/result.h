#pragma once
// What every strategy returns: paths, best first, and for voting the vote table.
#include <cstdint>
#include <string>
#include <vector>

namespace ponder {

enum class FinishReason { Eos, Stop, Length };
const char* finish_reason_name(FinishReason r);  // "eos", "stop", "length"

struct Path {
  int64_t index = 0;                // the path's index (its RNG stream for sampled paths)
  std::vector<int32_t> tokens;      // generated ids (an end-of-generation token included)
  std::vector<float> logprobs;      // per token: log-softmax of the model's raw logits
                                    // (beam search: of the processed distribution it ranks by)
  // Per token, when asked for (GenerateRequest::top_logprobs): the most probable ids and their
  // log-probs (as logprobs), most probable first (ties to the lower id). Sampled strategies only.
  std::vector<std::vector<std::pair<int32_t, float>>> top_logprobs;
  double cumulative_logprob = 0;
  double score = 0;                 // what the strategy ranked by
  FinishReason finish = FinishReason::Length;
  std::string text;                 // detokenized, cut before a stop string, EOS not rendered
  std::string reasoning, answer;    // split at the first "</think>"
  std::string extracted_answer;     // for voting: the normalized answer (empty when none)
};

struct VoteEntry {
  std::string answer;  // normalized
  int count = 0;
  double weight = 0;   // sum over its paths of exp(mean token log-prob)
};

// What a tree search did (MCTS only).
struct SearchStats {
  int64_t simulations = 0;      // selections that expanded a leaf or re-scored a finished one
  int64_t nodes = 0;            // step nodes created (the root not counted)
  int64_t rollouts = 0;         // completions scored (rollouts and finished child steps)
  int64_t moves = 0;            // steps committed at the root
  int peak_sequences = 0;       // most sequences held at once (tree leaves and running rollouts)
  double best_value = 0;        // the highest value of any completion scored
  std::vector<int> root_visits; // visits of the first root's children, in child order (by prior)
  std::vector<double> root_priors;
};

struct GenerateResult {
  std::vector<Path> paths;        // best first
  std::vector<VoteEntry> votes;   // vote strategy only, winner first
  std::string winner;             // vote strategy only
  int64_t tokens_generated = 0;   // every token any path or beam produced, returned or not
                                  // (beam search: each step's running beams' new tokens)
  SearchStats search;             // mcts only
};

}  // namespace ponder
