#pragma once
// Byte-level BPE pre-tokenizers: the regex that cuts text into words before merges are applied,
// one per `tokenizer.ggml.pre` family, with llama.cpp's regexes and its treatment of whitespace.
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct pcre2_real_code_8;  // PCRE2's compiled pattern (pcre2.h stays out of this header)

namespace ponder {

enum class PretokenizerKind {
  Gpt2,    // gpt-2
  Llama3,  // llama-bpe, llama3, llama-v3: digits in groups of up to 3
  Qwen2,   // qwen2, deepseek-r1-qwen: every digit alone
};

// The family of a `tokenizer.ggml.pre` name (llama.cpp's spellings), or nullopt when unsupported.
std::optional<PretokenizerKind> pretokenizer_kind(std::string_view pre);

class Pretokenizer {
 public:
  explicit Pretokenizer(PretokenizerKind kind);

  // Splits UTF-8 text into words. Malformed UTF-8 is first replaced as llama.cpp does (one U+FFFD
  // per bad byte), so the words hold valid UTF-8 even when `text` does not. Text the regex does not
  // match becomes a word of its own; the words concatenated give the cleaned text.
  std::vector<std::string> split(std::string_view text) const;

 private:
  std::shared_ptr<pcre2_real_code_8> code_;
};

}  // namespace ponder
