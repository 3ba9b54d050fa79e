// libFuzzer target for everything a model file feeds past the GGUF reader: the tokenizer loader
// (vocabulary, scores, token types, merges, special-token ids), the chat-format detection, the
// model loader (architecture table, config keys, tensor shapes and types, block scales, repacking)
// and a two-token forward over whatever weights it loaded (every quantized type's kernels). Any
// bytes either load or throw ponder::FormatError; a loaded tokenizer encodes and decodes a fixed
// text with ids inside its vocabulary. Built and run by scripts/fuzz.sh with real models as seeds.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "formats/chat_template.h"
#include "formats/gguf.h"
#include "formats/tokenizer.h"
#include "model/forward.h"
#include "model/kv_pool.h"
#include "model/model.h"

namespace {

volatile uint64_t g_sink;

[[noreturn]] void broken(const char* what) {
  std::fprintf(stderr, "model_fuzz: %s\n", what);
  std::abort();
}

constexpr std::string_view kText = "Hello <think>\n  world 12345 </think> \xc3\xbc \xe6\x97\xa5\xe6\x9c\xac <|im_start|>x";

uint64_t exercise(const ponder::Tokenizer& tok) {
  uint64_t h = uint64_t(tok.n_vocab());
  for (bool special : {false, true}) {
    const auto ids = tok.encode(kText, true, special);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.n_vocab()) broken("encode returned an id outside the vocabulary");
    h = h * 31 + tok.decode(ids).size();
  }
  for (int32_t id = 0; id < tok.n_vocab() && id < 300; ++id) h = h * 31 + tok.token_to_piece(id).size();
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ponder::GgufFile f;
  try {
    f = ponder::parse_gguf({data, size}, "fuzz.gguf");
  } catch (const ponder::FormatError&) {
    return 0;
  }
  uint64_t h = 0;
  try {
    h += exercise(ponder::Tokenizer::from_gguf(f));
  } catch (const ponder::FormatError&) {
  }
  try {
    h += uint64_t(ponder::detect_chat_format(f));
  } catch (const ponder::FormatError&) {
  }
  try {
    const auto model = ponder::load_model(std::move(f));
    h += uint64_t(model->config.n_embd) + exercise(model->tokenizer);
    // Two tokens through the model: every weight type's dequantization (the embedding row) and
    // matrix product runs on whatever bytes the file holds.
    const ponder::ModelConfig& c = model->config;
    ponder::KvPool pool(c.n_layer, c.kv_dim(), 16, 1);
    ponder::KvSeq seq;
    const int32_t tokens[2] = {0, c.n_vocab - 1};
    ponder::BatchItem item{.seq = &seq, .tokens = tokens, .logits = ponder::LogitsFor::All};
    ponder::ForwardState st;
    std::vector<float> logits;
    ponder::forward(*model, pool, {&item, 1}, st, logits);
    if (logits.size() != size_t(2) * size_t(c.n_vocab)) broken("forward returned the wrong number of logits");
    h += uint64_t(logits.size());
  } catch (const ponder::FormatError&) {
  }
  g_sink = h;
  return 0;
}
