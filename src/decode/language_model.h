#pragma once
// What the decoding strategies need of a model: sequences that can share a prefix (fork) and one
// batched step. ModelRunner implements it over a real model and the paged KV cache; tests
// implement it with scripted log-probabilities. Strategies never see KV blocks or kernels.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace ponder {

using SeqId = int32_t;

struct StepInput {
  SeqId seq = -1;
  std::span<const int32_t> tokens;  // appended to the sequence
  bool want_logits = true;          // logits of the last token
};

class LanguageModel {
 public:
  virtual ~LanguageModel() = default;

  virtual int32_t n_vocab() const = 0;
  virtual std::span<const int32_t> eog_tokens() const = 0;  // end-of-generation ids
  bool is_eog(int32_t id) const {
    for (int32_t e : eog_tokens())
      if (e == id) return true;
    return false;
  }
  // The bytes of a token (pieces of byte-level BPE may be part of a UTF-8 character).
  virtual std::string token_text(int32_t id) const = 0;
  // Text to ids without BOS, special-token text parsed (for forced text such as "</think>").
  virtual std::vector<int32_t> tokenize(std::string_view text) const = 0;

  virtual SeqId new_sequence() = 0;
  virtual SeqId fork(SeqId seq) = 0;  // shares everything seq holds; no copy
  virtual void release(SeqId seq) = 0;
  virtual int length(SeqId seq) const = 0;

  // One batched forward over every input; logits gets one row of n_vocab() per input with
  // want_logits, in input order. Throws ResourceError when the cache is full.
  virtual void step(std::span<const StepInput> inputs, std::vector<float>& logits) = 0;
};

}  // namespace ponder
