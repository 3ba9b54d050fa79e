#include "decode/greedy.h"

#include <chrono>

#include "core/error.h"
#include "model/forward.h"

namespace ponder {

int32_t argmax(std::span<const float> x) {
  int32_t best = 0;
  for (size_t i = 1; i < x.size(); ++i)
    if (x[i] > x[size_t(best)]) best = int32_t(i);
  return best;
}

GreedyResult generate_greedy(const Model& model, std::span<const int32_t> prompt, int n_predict,
                             const std::function<void(int32_t)>& on_token) {
  if (prompt.empty()) throw InvalidArgument("the prompt has no tokens (give text, or a model that adds BOS)");
  if (n_predict < 0) throw InvalidArgument("n_predict must be >= 0, got " + std::to_string(n_predict));
  using clock = std::chrono::steady_clock;
  const int block = 16;
  const int n_ctx = int(prompt.size()) + n_predict;
  KvPool pool(model.config.n_layer, model.config.kv_dim(), block, (n_ctx + block - 1) / block + 1);
  KvSeq seq;
  ForwardState st;
  std::vector<float> logits;
  GreedyResult r;
  const auto t0 = clock::now();
  BatchItem item{.seq = &seq, .tokens = prompt, .logits = LogitsFor::Last};
  forward(model, pool, {&item, 1}, st, logits);
  const auto t1 = clock::now();
  r.prompt_seconds = std::chrono::duration<double>(t1 - t0).count();
  for (int i = 0; i < n_predict; ++i) {
    const int32_t next = argmax(logits);
    r.tokens.push_back(next);
    if (on_token) on_token(next);
    if (model.tokenizer.is_eog(next)) {
      r.stopped_on_eog = true;
      break;
    }
    if (i + 1 == n_predict) break;
    BatchItem step{.seq = &seq, .tokens = {&r.tokens.back(), 1}, .logits = LogitsFor::Last};
    forward(model, pool, {&step, 1}, st, logits);
  }
  r.generate_seconds = std::chrono::duration<double>(clock::now() - t1).count();
  return r;
}

}  // namespace ponder
