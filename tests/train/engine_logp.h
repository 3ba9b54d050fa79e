#pragma once
// log p(target) at every position of a training batch's one sequence, from the engine's forward
// over a KV cache: what the trainer's forward_train gives, computed the engine's way.
#include <vector>

#include "kernels/activation.h"
#include "model/forward.h"
#include "train/forward_train.h"

namespace ponder::testing {

inline std::vector<double> engine_logp(const Model& model, const TrainBatch& b) {
  const int V = model.config.n_vocab;
  KvPool pool(model.config.n_layer, model.config.kv_dim(), 16, (b.T + 15) / 16 + 1);
  KvSeq seq;
  ForwardState st;
  std::vector<float> logits;
  BatchItem item{.seq = &seq, .tokens = b.tokens, .logits = LogitsFor::All};
  forward(model, pool, {&item, 1}, st, logits);
  std::vector<double> out;
  for (int t = 0; t + 1 < b.T; ++t) {
    const float* row = logits.data() + size_t(t) * size_t(V);
    out.push_back(double(row[b.targets[size_t(t)]]) - log_sum_exp(row, V));
  }
  return out;
}

}  // namespace ponder::testing
