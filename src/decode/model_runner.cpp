#include "decode/model_runner.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace ponder {

ModelRunner::ModelRunner(const Model& model, int n_positions)
    : model_(model),
      pool_(model.config.n_layer, model.config.kv_dim(), kBlockSize,
            std::max(1, (n_positions + kBlockSize - 1) / kBlockSize)) {}

int kv_positions_for(int64_t prompt_tokens, int64_t n_prompts, int n_paths, int max_new_tokens) {
  if (prompt_tokens < 0 || n_prompts < 0 || n_paths < 0 || max_new_tokens < 0)
    throw InvalidArgument("KV sizing: counts must be >= 0, got " + std::to_string(prompt_tokens) + " prompt tokens, " +
                          std::to_string(n_prompts) + " prompts, " + std::to_string(n_paths) + " paths, " +
                          std::to_string(max_new_tokens) + " new tokens");
  constexpr int64_t bs = ModelRunner::kBlockSize, limit = std::numeric_limits<int>::max();
  // Each factor is below 2^31, so the products fit in int64; the sum is checked term by term.
  // A path's blocks: a copy of its prompt's partly filled last block (r of its positions are the
  // prompt's, 0 < r < bs) and the blocks after it, ceil((N + r) / bs) in all, at most
  // ceil((N + bs - 1) / bs) whatever the prompt's length.
  const int64_t per_path = (int64_t(max_new_tokens) + 2 * bs - 2) / bs * bs;
  const int64_t per_prompt = int64_t(n_paths) * per_path + bs;  // < 2^62
  const bool too_many = per_prompt > limit || (n_prompts > 0 && per_prompt > (limit - std::min(prompt_tokens, limit)) / n_prompts);
  if (too_many || prompt_tokens > limit)
    throw InvalidArgument(std::to_string(n_prompts) + " prompts (" + std::to_string(prompt_tokens) + " tokens) x " +
                          std::to_string(n_paths) + " paths x " + std::to_string(max_new_tokens) +
                          " new tokens need more KV positions than the pool can index (" + std::to_string(limit) +
                          "): use fewer paths, prompts or new tokens");
  return int(prompt_tokens + n_prompts * per_prompt);
}

int kv_positions_for(int64_t prompt_tokens, const Strategy& s, int max_new_tokens) {
  const auto* m = std::get_if<MctsOptions>(&s);
  if (!m) return kv_positions_for(prompt_tokens, 1, n_paths(s), max_new_tokens);
  constexpr int64_t bs = ModelRunner::kBlockSize, limit = std::numeric_limits<int>::max();
  const int64_t budget = std::clamp<int64_t>(m->budget_tokens, 0, int64_t(1) << 24);
  const int64_t sequences = budget + std::clamp<int64_t>(m->expand, 0, 1 << 16);
  const int64_t positions = std::max<int64_t>(prompt_tokens, 0) + budget + 2 * bs * sequences + bs;
  if (positions > limit)
    throw InvalidArgument("MCTS with a budget of " + std::to_string(m->budget_tokens) + " tokens over a prompt of " +
                          std::to_string(prompt_tokens) + " tokens needs more KV positions than the pool can index");
  return int(positions);
}

int kv_positions_for(std::span<const std::vector<int32_t>> prompts, int n_paths, int max_new_tokens) {
  int64_t tokens = 0;
  for (const auto& p : prompts) tokens += int64_t(p.size());
  return kv_positions_for(tokens, int64_t(prompts.size()), n_paths, max_new_tokens);
}

SeqId ModelRunner::store(KvSeq seq) {
  if (!free_ids_.empty()) {
    const SeqId id = free_ids_.back();
    free_ids_.pop_back();
    seqs_[size_t(id)] = std::move(seq);
    live_[size_t(id)] = true;
    return id;
  }
  seqs_.push_back(std::move(seq));
  live_.push_back(true);
  return SeqId(seqs_.size() - 1);
}

KvSeq& ModelRunner::get(SeqId id) {
  if (id < 0 || size_t(id) >= seqs_.size() || !live_[size_t(id)])
    throw InvalidArgument("sequence " + std::to_string(id) + " does not exist");
  return seqs_[size_t(id)];
}

SeqId ModelRunner::new_sequence() { return store(KvSeq{}); }

SeqId ModelRunner::fork(SeqId seq) { return store(pool_.fork(get(seq))); }

void ModelRunner::release(SeqId seq) {
  pool_.release(get(seq));
  live_[size_t(seq)] = false;
  free_ids_.push_back(seq);
}

void ModelRunner::step(std::span<const StepInput> inputs, std::vector<float>& logits) {
  batch_.clear();
  for (const StepInput& in : inputs)
    batch_.push_back({.seq = &get(in.seq), .tokens = in.tokens, .logits = in.want_logits ? LogitsFor::Last : LogitsFor::None});
  forward(model_, pool_, batch_, state_, logits);
  peak_used_ = std::max(peak_used_, pool_.n_used());
}

}  // namespace ponder
