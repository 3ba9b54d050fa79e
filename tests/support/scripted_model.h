#pragma once
// A LanguageModel whose next-token probabilities are a function of the sequence's tokens, for
// testing strategies against outcomes worked out by hand. Token 0 is EOS; token i > 0 renders as
// the text given for it.
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "decode/language_model.h"

namespace ponder::testing {

class ScriptedModel : public LanguageModel {
 public:
  using Probs = std::function<std::vector<double>(const std::vector<int32_t>& tokens)>;

  ScriptedModel(std::vector<std::string> texts, Probs probs) : texts_(std::move(texts)), probs_(std::move(probs)) {}

  int32_t n_vocab() const override { return int32_t(texts_.size()); }
  std::span<const int32_t> eog_tokens() const override { return eog_; }
  std::string token_text(int32_t id) const override { return texts_.at(size_t(id)); }
  std::vector<int32_t> tokenize(std::string_view text) const override {
    std::vector<int32_t> ids;  // greedy longest match over the token texts
    size_t i = 0;
    while (i < text.size()) {
      int32_t best = -1;
      size_t best_len = 0;
      for (int32_t t = 1; t < n_vocab(); ++t)
        if (texts_[size_t(t)].size() > best_len && text.substr(i, texts_[size_t(t)].size()) == texts_[size_t(t)])
          best = t, best_len = texts_[size_t(t)].size();
      if (best < 0) throw std::runtime_error("scripted model cannot tokenize the text");
      ids.push_back(best);
      i += best_len;
    }
    return ids;
  }
  SeqId new_sequence() override {
    seqs_.emplace_back();
    live_.push_back(true);
    ++n_live_;
    return SeqId(seqs_.size() - 1);
  }
  SeqId fork(SeqId s) override {
    const SeqId id = new_sequence();
    seqs_[size_t(id)] = seqs_.at(size_t(s));
    return id;
  }
  void release(SeqId s) override {
    if (!live_.at(size_t(s))) throw std::logic_error("sequence released twice");
    live_[size_t(s)] = false;
    --n_live_;
  }
  int length(SeqId s) const override { return int(seqs_.at(size_t(s)).size()); }
  void step(std::span<const StepInput> inputs, std::vector<float>& logits) override {
    logits.clear();
    ++n_steps_;
    for (const StepInput& in : inputs) {
      if (!live_.at(size_t(in.seq))) throw std::logic_error("step on a released sequence");
      auto& toks = seqs_[size_t(in.seq)];
      toks.insert(toks.end(), in.tokens.begin(), in.tokens.end());
      if (!in.want_logits) continue;
      const std::vector<double> p = probs_(toks);
      for (double x : p) logits.push_back(x > 0 ? float(std::log(x)) : -INFINITY);
    }
  }

  int n_live() const { return n_live_; }
  int n_steps() const { return n_steps_; }

 private:
  std::vector<std::string> texts_;
  Probs probs_;
  std::vector<int32_t> eog_ = {0};
  std::vector<std::vector<int32_t>> seqs_;
  std::vector<bool> live_;
  int n_live_ = 0, n_steps_ = 0;
};

}  // namespace ponder::testing
