#pragma once
// LanguageModel over a loaded Model: a paged KV pool shared by all sequences and one forward
// per step.
#include <memory>

#include "decode/language_model.h"
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

// Positions a request needs: the prompt once plus every path's generated tokens.
int positions_for(int prompt_tokens, int n_paths, int max_new_tokens);

}  // namespace ponder
