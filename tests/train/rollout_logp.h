#pragma once
// The completion-token log-probs of one rollout from a training forward over it alone (no batch,
// no padding): the reference the GRPO tests hold the batched and micro-batched passes to.
#include <vector>

#include "train/forward_train.h"
#include "train/grpo_step.h"

namespace ponder::testing {

inline std::vector<double> completion_logp_alone(const TrainModel& m, const Rollout& r, float temperature) {
  TrainBatch b{.B = 1, .T = int(r.prompt.size() + r.completion.size()) - 1};
  std::vector<int32_t> seq = r.prompt;
  seq.insert(seq.end(), r.completion.begin(), r.completion.end());
  b.tokens.assign(seq.begin(), seq.end() - 1);
  b.targets.assign(size_t(b.T), -1);
  for (size_t t = r.prompt.size() - 1; t < size_t(b.T); ++t) b.targets[t] = seq[t + 1];
  Activations acts;
  std::vector<float> logp;
  forward_train(m, b, acts, logp, temperature);
  return std::vector<double>(logp.begin() + ptrdiff_t(r.prompt.size() - 1), logp.end());
}

}  // namespace ponder::testing
