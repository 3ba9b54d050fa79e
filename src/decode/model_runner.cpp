#include "decode/model_runner.h"

#include <algorithm>
#include <limits>

#include "core/error.h"

namespace ponder {

ModelRunner::ModelRunner(const Model& model, int n_positions)
    : model_(model),
      pool_(model.config.n_layer, model.config.kv_dim(), kBlockSize,
            std::max(1, (n_positions + kBlockSize - 1) / kBlockSize)) {}

int positions_for(int prompt_tokens, int n_paths, int max_new_tokens) {
  // Each path may also copy the prompt's partly filled last block once (copy-on-write).
  const int64_t n = int64_t(prompt_tokens) + int64_t(n_paths) * (int64_t(max_new_tokens) + ModelRunner::kBlockSize) +
                    ModelRunner::kBlockSize;
  if (n > std::numeric_limits<int>::max())
    throw InvalidArgument(std::to_string(n_paths) + " paths of " + std::to_string(max_new_tokens) +
                          " tokens need " + std::to_string(n) + " KV positions, more than " +
                          std::to_string(std::numeric_limits<int>::max()));
  return int(n);
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
