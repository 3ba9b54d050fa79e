#include "train/char_vocab.h"

namespace ponder {

namespace {

// GPT-2's byte-to-unicode table: printable bytes map to themselves, the others to U+0100...
std::string byte_token(int b) {
  const bool printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  int cp = b;
  if (!printable) {
    static const std::vector<int> shifted = [] {
      std::vector<int> map(256, -1);
      int n = 0;
      for (int x = 0; x < 256; ++x) {
        const bool p = (x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff);
        if (!p) map[size_t(x)] = 256 + n++;
      }
      return map;
    }();
    cp = shifted[size_t(b)];
  }
  std::string s;  // UTF-8 of cp (< 0x800)
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

}  // namespace

std::vector<std::pair<std::string, GgufValue>> char_vocab_metadata() {
  GgufArray tokens{.type = GgufType::STRING, .items = {}}, types{.type = GgufType::INT32, .items = {}};
  auto add = [&](const std::string& text, int32_t type) {
    tokens.items.push_back({text});
    types.items.push_back({type});
  };
  for (int b = 0; b < 256; ++b) add(byte_token(b), int32_t(TokenType::Normal));
  add("<|bos|>", int32_t(TokenType::Control));  // 256
  add("<|eos|>", int32_t(TokenType::Control));  // 257
  for (const char* tag : {"<think>", "</think>", "<answer>", "</answer>"}) add(tag, int32_t(TokenType::UserDefined));
  return {
      {"tokenizer.ggml.model", {std::string("gpt2")}},
      {"tokenizer.ggml.pre", {std::string("gpt-2")}},
      {"tokenizer.ggml.tokens", {tokens}},
      {"tokenizer.ggml.token_type", {types}},
      {"tokenizer.ggml.merges", {GgufArray{.type = GgufType::STRING, .items = {}}}},
      {"tokenizer.ggml.bos_token_id", {uint32_t(256)}},
      {"tokenizer.ggml.eos_token_id", {uint32_t(257)}},
      {"tokenizer.ggml.padding_token_id", {uint32_t(257)}},
      {"tokenizer.ggml.add_bos_token", {true}},
      {"tokenizer.ggml.add_eos_token", {false}},
  };
}

Tokenizer char_tokenizer() {
  return Tokenizer::from_gguf(GgufFile::from_metadata("<char vocabulary>", char_vocab_metadata()));
}

}  // namespace ponder
