#include "formats/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdexcept>

#include "formats/unicode.h"

namespace ponder {

namespace {

// The regexes exactly as llama.cpp's llm_tokenizer_bpe lists them (the (?i:...) of the original
// tokenizer.json files already spelled out as [sS] etc.).
constexpr const char* kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
constexpr const char* kLlama3Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Regex =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// llama.cpp's whitespace is Unicode White_Space (its unicode_set_whitespace, generated from
// Python's `regex` \s). PCRE2's \s, even with UCP, leaves out U+0085, so \s and \S are spelled out
// with this set instead.
constexpr const char* kWhitespace =
    R"(\t\n\x0B\f\r\x20\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Replaces \s and \S by explicit classes: `[...]`/`[^...]` outside brackets, the bare set inside.
std::string expand_whitespace(std::string_view regex) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < regex.size(); ++i) {
    const char c = regex[i];
    if (c == '\\' && i + 1 < regex.size()) {
      const char e = regex[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhitespace) : "[" + std::string(kWhitespace) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhitespace) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[') in_class = true;
    if (c == ']') in_class = false;
    out += c;
  }
  return out;
}

const char* regex_for(PretokenizerKind kind) {
  switch (kind) {
    case PretokenizerKind::Gpt2: return kGpt2Regex;
    case PretokenizerKind::Llama3: return kLlama3Regex;
    case PretokenizerKind::Qwen2: return kQwen2Regex;
  }
  return kGpt2Regex;
}

// The text cleaned as llama.cpp does (bad bytes -> U+FFFD) and a copy for PCRE2 in which
// surrogate code points, which PCRE2 rejects as UTF-8, are replaced by U+FFFD. Both encodings are
// 3 bytes and both characters are neither letter, digit nor space, so offsets and matches agree.
struct CleanText {
  std::string text;
  std::string probe;
};

CleanText clean_utf8(std::string_view raw) {
  CleanText c;
  c.text.reserve(raw.size());
  c.probe.reserve(raw.size());
  for (uint32_t cp : utf8_to_codepoints(raw)) {
    append_utf8(c.text, cp);
    append_utf8(c.probe, (cp >= 0xD800 && cp <= 0xDFFF) ? kReplacementChar : cp);
  }
  return c;
}

}  // namespace

std::optional<PretokenizerKind> pretokenizer_kind(std::string_view pre) {
  if (pre == "gpt-2") return PretokenizerKind::Gpt2;
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return PretokenizerKind::Llama3;
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") return PretokenizerKind::Qwen2;
  return std::nullopt;
}

Pretokenizer::Pretokenizer(PretokenizerKind kind) {
  const std::string pattern = expand_whitespace(regex_for(kind));
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &error_offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    throw std::logic_error("pre-tokenizer regex does not compile at offset " + std::to_string(error_offset) +
                           ": " + reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback
  code_.reset(code, pcre2_code_free);
}

std::vector<std::string> Pretokenizer::split(std::string_view raw) const {
  const CleanText clean = clean_utf8(raw);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(clean.probe.data());
  const size_t n = clean.probe.size();
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> match(
      pcre2_match_data_create_from_pattern(code_.get(), nullptr), pcre2_match_data_free);

  std::vector<std::string> words;
  size_t pos = 0;
  while (pos < n) {
    const int rc = pcre2_match(code_.get(), subject, n, pos, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc < 0) break;  // no further match (none of the patterns can match the empty string)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
    // Unmatched text before a match is kept as its own word, as llama.cpp's splitter does.
    if (ov[0] > pos) words.emplace_back(clean.text.substr(pos, ov[0] - pos));
    words.emplace_back(clean.text.substr(ov[0], ov[1] - ov[0]));
    pos = ov[1];
  }
  if (pos < n) words.emplace_back(clean.text.substr(pos));
  return words;
}

}  // namespace ponder
