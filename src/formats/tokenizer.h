#pragma once
// Tokenizers read from GGUF metadata: SentencePiece-style (`tokenizer.ggml.model` = "llama") and
// byte-level BPE ("gpt2") with the pre-tokenizers gpt-2, llama-bpe, qwen2 and deepseek-r1-qwen.
// Behaviour matches llama.cpp's llama-vocab (see ../shared/models/vocab/README.md).
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/gguf.h"
#include "formats/pretokenize.h"

namespace ponder {

enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
enum class TokenizerModel { Spm, Bpe };

struct Vocab {
  TokenizerModel model = TokenizerModel::Spm;
  std::string pre = "default";             // tokenizer.ggml.pre
  std::vector<std::string> tokens;         // (V) token text as stored in the file
  std::vector<float> scores;               // (V) SPM merge scores; empty for BPE files without scores
  std::vector<TokenType> types;            // (V) as stored in the file (see token_attr for llama.cpp's overrides)
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;  // -1: none (0xFFFFFFFF in the file)
  bool add_bos = false, add_eos = false;
  std::vector<int32_t> eog;                // end-of-generation ids (eos, eot, <|im_end|>, ...)
};

class Tokenizer {
 public:
  Tokenizer() = default;
  // Reads the vocabulary from the GGUF metadata; throws FormatError naming the file and key.
  static Tokenizer from_gguf(const GgufFile& f);

  // Text -> ids. add_special: add BOS/EOS as the vocab says. parse_special: match control and
  // user-defined token text in the input (user-defined tokens are matched even when false,
  // as llama.cpp does).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;

  // The bytes of one token (byte-level BPE pieces may be part of a UTF-8 character).
  // render_special: control tokens render as their text; otherwise as nothing.
  std::string token_to_piece(int32_t id, bool render_special = true) const;
  // Ids -> text, byte-exact inverse of encode(text, false, false) for text without special tokens.
  std::string decode(std::span<const int32_t> ids, bool render_special = true) const;

  const Vocab& vocab() const { return vocab_; }
  int32_t n_vocab() const { return int32_t(vocab_.tokens.size()); }
  int32_t bos() const { return vocab_.bos; }
  int32_t eos() const { return vocab_.eos; }
  bool is_eog(int32_t id) const;
  // Id of a token whose text is exactly `text`, or -1.
  int32_t find_token(std::string_view text) const;

 private:
  // Lets find() take a string_view without building a std::string.
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using TokenIds = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  Vocab vocab_;
  TokenIds token_ids_;
  // Implementation state (merge ranks, special-token list, compiled regexes, ...) lives here.
  struct Impl;
  std::shared_ptr<const Impl> impl_;

  // Raw text holding no special token -> ids, appended to `out` (tokenizer_spm.cpp, tokenizer_bpe.cpp).
  void encode_spm(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe(std::string_view text, std::vector<int32_t>& out) const;
};

// llama.cpp's token attributes (llama_token_attr): the file's token type as one bit, plus the
// control bit that llama.cpp adds to end-of-generation and fill-in-the-middle tokens it finds by text.
namespace token_attr {
enum : uint8_t { Unknown = 1, Unused = 2, Normal = 4, Control = 8, UserDefined = 16, Byte = 32 };
}  // namespace token_attr

// Private to Tokenizer (callers cannot name it); defined here so that the tokenizer_*.cpp files share it.
struct Tokenizer::Impl {
  std::vector<uint8_t> attrs;                          // (V) token_attr bits; 0 for undefined types
  std::vector<int32_t> special_ids;                    // control/user-defined/unknown ids, longest text first
  std::unordered_map<std::string, int32_t> bpe_ranks;  // "left right" merge -> rank (BPE)
  std::optional<Pretokenizer> pretokenizer;            // BPE
  bool add_space_prefix = false;                       // SPM: text gets a leading space
  bool ignore_merges = false;                          // llama-bpe: a word that is a token stays whole
};

}  // namespace ponder
