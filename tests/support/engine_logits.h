#pragma once
// The engine's logits of the last position after a prompt, from a fresh KV cache.
#include <cstdint>
#include <vector>

#include "model/forward.h"

namespace ponder::testing {

inline std::vector<float> last_logits(const Model& m, const std::vector<int32_t>& tokens) {
  KvPool pool(m.config.n_layer, m.config.kv_dim(), 16, int64_t(tokens.size()) / 16 + 2);
  KvSeq seq;
  ForwardState st;
  std::vector<float> logits;
  BatchItem item{.seq = &seq, .tokens = tokens, .logits = LogitsFor::Last};
  forward(m, pool, {&item, 1}, st, logits);
  return logits;
}

}  // namespace ponder::testing
