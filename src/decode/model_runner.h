#pragma once
// LanguageModel over a loaded Model: a paged KV pool shared by all sequences and one forward
// per step.
#include <memory>
#include <span>
#include <vector>

#include "decode/language_model.h"
#include "decode/options.h"
#include "model/forward.h"
#include "model/kv_pool.h"
#include "model/model.h"

namespace ponder {

class ModelRunner : public LanguageModel {
 public:
  static constexpr int kBlockSize = 16;
  // A pool of n_positions (rounded up to whole blocks) shared by all sequences.
  ModelRunner(const Model& model, int n_positions);

  int32_t n_vocab() const override { return model_.config.n_vocab; }
  std::span<const int32_t> eog_tokens() const override { return model_.tokenizer.vocab().eog; }
  std::string token_text(int32_t id) const override { return model_.tokenizer.token_to_piece(id, true); }
  std::vector<int32_t> tokenize(std::string_view text) const override {
    return model_.tokenizer.encode(text, false, true);
  }
  SeqId new_sequence() override;
  SeqId fork(SeqId seq) override;
  void release(SeqId seq) override;
  int length(SeqId seq) const override { return seqs_.at(size_t(seq)).n_pos; }
  void step(std::span<const StepInput> inputs, std::vector<float>& logits) override;

  const Model& model() const { return model_; }
  const KvPool& pool() const { return pool_; }
  // For a scheduler that shares blocks across requests (server/scheduler.h): the pool and a
  // sequence's block table.
  KvPool& pool() { return pool_; }
  KvSeq& kv(SeqId seq) { return get(seq); }
  int peak_blocks_used() const { return peak_used_; }  // the most blocks in use after any step

 private:
  SeqId store(KvSeq seq);
  KvSeq& get(SeqId id);

  const Model& model_;
  KvPool pool_;
  ForwardState state_;
  std::vector<KvSeq> seqs_;
  std::vector<bool> live_;
  std::vector<SeqId> free_ids_;
  std::vector<BatchItem> batch_;
  int peak_used_ = 0;
};

// The one rule that sizes a KV pool for a decode job: n_prompts prompts of prompt_tokens tokens
// in all, each decoded by n_paths paths (n_paths(strategy): beam search keeps num_beams sequences,
// children taking their parents' place) of up to max_new_tokens new tokens. Every prompt is
// stored once, each prompt one more block (its partly filled last one); each path gets whole blocks
// for its tokens and for the copy of its prompt's partly filled last block (copy-on-write):
// ceil((new tokens + block - 1) / block) blocks, whatever the prompt's length. Computed in int64:
// throws InvalidArgument naming the counts when the job needs more than 2^31 - 1 positions.
int kv_positions_for(int64_t prompt_tokens, int64_t n_prompts, int n_paths, int max_new_tokens);
// One prompt decoded by a strategy: the rule above with n_paths(s), except MCTS, whose tree stores
// every generated token once (children share their parents' blocks) plus at most a partly filled
// block and a copy-on-write copy per sequence it holds (a leaf or a running rollout; each holds at
// least one generated token, so there are at most budget + expand of them):
// prompt + budget + 2 * block * (budget + expand) + block.
int kv_positions_for(int64_t prompt_tokens, const Strategy& s, int max_new_tokens);
// The same for prompts given as token lists.
int kv_positions_for(std::span<const std::vector<int32_t>> prompts, int n_paths, int max_new_tokens);

}  // namespace ponder
