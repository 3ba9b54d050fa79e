// Loading a vocabulary from GGUF metadata, special tokens, end-of-generation tokens, encode's outer
// loop and detokenization. The two segmentation algorithms are in tokenizer_spm.cpp and
// tokenizer_bpe.cpp. Reference: llama.cpp's src/llama-vocab.cpp (llama_vocab::impl::load,
// tokenizer_st_partition, tokenize, token_to_piece, detokenize).
#include "formats/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <functional>

#include "core/error.h"
#include "formats/unicode.h"

namespace ponder {

namespace {

namespace attr = token_attr;
using Lookup = std::function<int32_t(std::string_view)>;

constexpr uint32_t kNoToken = 0xFFFFFFFF;                  // GGUF's "no such token"
constexpr std::string_view kEscapedSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space

[[noreturn]] void fail(const GgufFile& f, const std::string& what) { throw FormatError(f.path + ": " + what); }

uint8_t attr_from_type(int32_t type) {
  switch (TokenType(type)) {
    case TokenType::Normal: return attr::Normal;
    case TokenType::Unknown: return attr::Unknown;
    case TokenType::Control: return attr::Control;
    case TokenType::UserDefined: return attr::UserDefined;
    case TokenType::Unused: return attr::Unused;
    case TokenType::Byte: return attr::Byte;
  }
  return 0;  // undefined type: renders as nothing, like llama.cpp's LLAMA_TOKEN_ATTR_UNDEFINED
}

// An optional per-token array: nullptr when absent; otherwise of one of `types`, one entry per token.
const GgufArray* find_token_array(const GgufFile& f, const std::string& key, std::initializer_list<GgufType> types,
                                  size_t n_tokens) {
  const GgufValue* v = f.find(key);
  if (!v) return nullptr;
  const GgufArray* a = v->type() == GgufType::ARRAY ? &std::get<GgufArray>(v->v) : nullptr;
  if (!a || std::find(types.begin(), types.end(), a->type) == types.end()) {
    const std::string actual = a ? "array of " + gguf_type_name(a->type) : gguf_type_name(v->type());
    fail(f, "metadata key '" + key + "' has type " + actual + ", expected an array of " +
                gguf_type_name(*types.begin()));
  }
  if (a->items.size() < n_tokens)
    fail(f, "metadata key '" + key + "' has " + std::to_string(a->items.size()) + " entries, expected " +
                std::to_string(n_tokens) + " (one per token)");
  return a;
}

// A special-token id: absent -> `fallback`; 0xFFFFFFFF -> none; another id outside the vocabulary
// -> `fallback` (llama.cpp keeps its default then, since some files carry such ids).
int32_t read_token_id(const GgufFile& f, const std::string& key, int32_t fallback, size_t n_tokens) {
  if (!f.find(key)) return fallback;
  const int64_t id = f.get_int(key);
  if (id == int64_t(kNoToken)) return -1;
  return (id >= 0 && uint64_t(id) < n_tokens) ? int32_t(id) : fallback;
}

// tokenizer.ggml.model and tokenizer.ggml.pre; returns the pre-tokenizer for BPE vocabularies.
std::optional<PretokenizerKind> read_model(const GgufFile& f, Vocab& v) {
  const std::string model = f.get_string("tokenizer.ggml.model");
  if (model == "llama") {
    v.model = TokenizerModel::Spm;
    v.pre = f.find("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
    if (v.pre != "default")
      fail(f, "tokenizer.ggml.pre '" + v.pre + "' is not supported for tokenizer.ggml.model 'llama' "
              "(expected 'default')");
    return std::nullopt;
  }
  if (model != "gpt2")
    fail(f, "tokenizer.ggml.model '" + model + "' is not supported (expected 'llama' or 'gpt2')");
  v.model = TokenizerModel::Bpe;
  v.pre = f.get_string("tokenizer.ggml.pre");
  const std::optional<PretokenizerKind> kind = pretokenizer_kind(v.pre);
  if (!kind)
    fail(f, "tokenizer.ggml.pre '" + v.pre + "' is not supported (expected gpt-2, llama-bpe, llama3, llama-v3, "
            "qwen2 or deepseek-r1-qwen)");
  return kind;
}

// Token texts, scores and types. llama.cpp renames empty texts to [EMPTY_<id>].
void read_tokens(const GgufFile& f, Vocab& v) {
  const GgufArray& tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING);
  const size_t n = tokens.items.size();
  if (n == 0) fail(f, "metadata key 'tokenizer.ggml.tokens' is empty");
  v.tokens.resize(n);
  for (size_t i = 0; i < n; ++i) {
    v.tokens[i] = std::get<std::string>(tokens.items[i].v);
    if (v.tokens[i].empty()) v.tokens[i] = "[EMPTY_" + std::to_string(i) + "]";
  }
  if (const GgufArray* a = find_token_array(f, "tokenizer.ggml.scores", {GgufType::FLOAT32, GgufType::INT32}, n)) {
    v.scores.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const auto& x = a->items[i].v;
      v.scores[i] = a->type == GgufType::FLOAT32 ? std::get<float>(x) : float(std::get<int32_t>(x));
    }
  }
  const GgufArray* types = find_token_array(f, "tokenizer.ggml.token_type", {GgufType::INT32}, n);
  v.types.assign(n, TokenType::Normal);  // llama.cpp treats a file without types as all normal
  if (types)
    for (size_t i = 0; i < n; ++i) v.types[i] = TokenType(std::get<int32_t>(types->items[i].v));
}

// BOS/EOS/UNK/PAD ids and whether BOS/EOS are added, with llama.cpp's defaults.
void read_special_ids(const GgufFile& f, Vocab& v, std::optional<PretokenizerKind> kind) {
  const size_t n = v.tokens.size();
  const bool spm = v.model == TokenizerModel::Spm;
  // llama.cpp's SPM defaults are 1/2/0. Its BPE default of 11 for BOS and EOS is a leftover that
  // would make token 11 end generation, so BPE files without the keys get none instead.
  auto fallback = [&](int32_t id) { return spm && size_t(id) < n ? id : -1; };
  v.bos = read_token_id(f, "tokenizer.ggml.bos_token_id", fallback(1), n);
  v.eos = read_token_id(f, "tokenizer.ggml.eos_token_id", fallback(2), n);
  v.unk = read_token_id(f, "tokenizer.ggml.unknown_token_id", fallback(0), n);
  v.pad = read_token_id(f, "tokenizer.ggml.padding_token_id", -1, n);
  const bool llama3 = kind == PretokenizerKind::Llama3;
  v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token", spm || llama3);
  v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  if (v.add_bos && v.bos < 0)
    fail(f, "tokenizer.ggml.add_bos_token is true, but tokenizer.ggml.bos_token_id is not set");
  if (v.add_eos && v.eos < 0)
    fail(f, "tokenizer.ggml.add_eos_token is true, but tokenizer.ggml.eos_token_id is not set");
}

// Tokens llama.cpp finds by text when the file does not name them: end of turn/message and
// fill-in-the-middle. The one it picks gets the control bit; some of them end generation.
struct NamedToken {
  const char* key;
  std::vector<std::string_view> texts;
  bool ends_generation;
};

const std::vector<NamedToken>& named_tokens() {
  static const std::vector<NamedToken> kNamed = {
      {"tokenizer.ggml.eot_token_id",
       {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
        "_<EOT>", "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<end_of_utterance>"},
       true},
      {"tokenizer.ggml.eom_token_id", {"<|eom_id|>"}, true},
      {"tokenizer.ggml.fim_pre_token_id",
       {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
        "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"},
       false},
      {"tokenizer.ggml.fim_suf_token_id",
       {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>", "<SUF>",
        "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"},
       false},
      {"tokenizer.ggml.fim_mid_token_id",
       {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>", "<MID>",
        "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"},
       false},
      {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}, true},
      {"tokenizer.ggml.fim_rep_token_id",
       {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
       true},
      {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}, true},
  };
  return kNamed;
}

// Texts that end generation wherever they are in the vocabulary (llama.cpp's special_eog_ids).
const std::vector<std::string_view>& eog_texts() {
  static const std::vector<std::string_view> kTexts = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
      "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
      "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
      "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~["};
  return kTexts;
}

// Fills v.eog and adds llama.cpp's control bits. Not copied: its workarounds for gpt-oss, solar-open
// and gemma4 vocabularies, whose pre-tokenizers ponder rejects anyway.
void find_eog_tokens(const GgufFile& f, Vocab& v, std::vector<uint8_t>& attrs, const Lookup& lookup) {
  std::vector<int32_t> eog;
  for (const NamedToken& named : named_tokens()) {
    int32_t id = read_token_id(f, named.key, -1, v.tokens.size());
    for (size_t i = 0; id < 0 && i < named.texts.size(); ++i) {
      id = lookup(named.texts[i]);
      if (id >= 0) attrs[id] |= attr::Control;
    }
    if (id >= 0 && named.ends_generation) eog.push_back(id);
  }
  for (std::string_view text : eog_texts()) {
    if (const int32_t id = lookup(text); id >= 0) {
      eog.push_back(id);
      attrs[id] |= attr::Control;  // e.g. Qwen's normal token "</s>" becomes a control token
    }
  }
  if (v.eos >= 0) eog.push_back(v.eos);
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  v.eog = std::move(eog);
}

// Ids matched in raw text before segmentation, longest text first (ties by id; llama.cpp's
// unstable sort leaves them in any order).
std::vector<int32_t> special_token_order(const Vocab& v, const std::vector<uint8_t>& attrs) {
  std::vector<int32_t> ids;
  for (int32_t id = 0; id < int32_t(attrs.size()); ++id)
    if (attrs[id] & (attr::Control | attr::UserDefined | attr::Unknown)) ids.push_back(id);
  std::stable_sort(ids.begin(), ids.end(),
                   [&](int32_t a, int32_t b) { return v.tokens[a].size() > v.tokens[b].size(); });
  return ids;
}

std::unordered_map<std::string, int32_t> read_merges(const GgufFile& f) {
  const GgufArray& merges = f.get_array("tokenizer.ggml.merges", GgufType::STRING);
  std::unordered_map<std::string, int32_t> ranks;
  ranks.reserve(merges.items.size());
  for (size_t i = 0; i < merges.items.size(); ++i) {
    const std::string& m = std::get<std::string>(merges.items[i].v);
    // llama.cpp splits at the first space after the first byte and keeps the first rank of a
    // duplicate; the whole line is then the lookup key "left right".
    if (m.find(' ', 1) != std::string::npos) ranks.try_emplace(m, int32_t(i));
  }
  return ranks;
}

// A piece of raw text, or a special token found in it.
struct Fragment {
  int32_t token = -1;  // -1: text
  size_t offset = 0, length = 0;
};

// Cuts every occurrence of special token `id` out of the text fragments (one pass of llama.cpp's
// tokenizer_st_partition, which runs a pass per special token, longest first).
std::vector<Fragment> split_on_special(std::string_view text, int32_t id, std::string_view special,
                                       const std::vector<Fragment>& fragments) {
  std::vector<Fragment> out;
  for (const Fragment& frag : fragments) {
    if (frag.token >= 0) {
      out.push_back(frag);
      continue;
    }
    const std::string_view window = text.substr(0, frag.offset + frag.length);
    size_t pos = frag.offset;
    for (size_t m = window.find(special, pos); m != std::string_view::npos; m = window.find(special, pos)) {
      if (m > pos) out.push_back({.token = -1, .offset = pos, .length = m - pos});
      out.push_back({.token = id});
      pos = m + special.size();
    }
    if (pos < window.size()) out.push_back({.token = -1, .offset = pos, .length = window.size() - pos});
  }
  return out;
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufFile& f) {
  Tokenizer t;
  auto impl = std::make_shared<Impl>();
  Vocab& v = t.vocab_;
  const std::optional<PretokenizerKind> kind = read_model(f, v);
  read_tokens(f, v);
  t.token_ids_.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const auto [it, inserted] = t.token_ids_.try_emplace(v.tokens[i], int32_t(i));
    if (!inserted)
      fail(f, "tokenizer.ggml.tokens has '" + v.tokens[i] + "' twice (ids " + std::to_string(it->second) + " and " +
                  std::to_string(i) + ")");
  }
  read_special_ids(f, v, kind);

  impl->attrs.resize(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) impl->attrs[i] = attr_from_type(int32_t(v.types[i]));
  find_eog_tokens(f, v, impl->attrs, [&t](std::string_view s) { return t.find_token(s); });
  impl->special_ids = special_token_order(v, impl->attrs);

  impl->add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", v.model == TokenizerModel::Spm);
  if (kind) {
    impl->bpe_ranks = read_merges(f);
    impl->pretokenizer.emplace(*kind);
    impl->ignore_merges = *kind == PretokenizerKind::Llama3;
  }
  t.impl_ = std::move(impl);
  return t;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  // Cut special-token texts out of the raw text, one special token at a time over all remaining
  // text fragments (llama.cpp's tokenizer_st_partition). Control and unknown tokens count only
  // with parse_special; user-defined ones always.
  if (!impl_) throw InvalidArgument("Tokenizer::encode: the tokenizer has no vocabulary (default-constructed)");
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({.token = -1, .offset = 0, .length = text.size()});
  for (int32_t id : impl_->special_ids) {
    if (!parse_special && (impl_->attrs[id] & (attr::Control | attr::Unknown))) continue;
    if (text.find(vocab_.tokens[id]) == std::string_view::npos) continue;  // the common case, kept cheap
    fragments = split_on_special(text, id, vocab_.tokens[id], fragments);
  }

  std::vector<int32_t> out;
  if (add_special && vocab_.add_bos) out.push_back(vocab_.bos);
  bool after_special = true;  // SPM: the space prefix goes at the start and after each special token
  for (const Fragment& frag : fragments) {
    if (frag.token >= 0) {
      out.push_back(frag.token);
      after_special = true;
      continue;
    }
    const std::string_view piece = text.substr(frag.offset, frag.length);
    if (vocab_.model == TokenizerModel::Bpe) {
      encode_bpe(piece, out);
      continue;
    }
    std::string escaped = impl_->add_space_prefix && after_special ? std::string(kEscapedSpace) : "";
    for (char c : piece) {
      if (c == ' ') escaped += kEscapedSpace;
      else escaped += c;
    }
    encode_spm(escaped, out);
    after_special = false;
  }
  if (add_special && vocab_.add_eos) out.push_back(vocab_.eos);
  return out;
}

namespace {

// A byte-level BPE token's text back to bytes (llama.cpp's llama_decode_text, including its
// marker for characters outside GPT-2's byte alphabet).
std::string decode_byte_level(const std::string& text) {
  std::string out;
  for (uint32_t cp : utf8_to_codepoints(text)) {
    if (const int b = unicode_to_byte(cp); b >= 0) {
      out.push_back(char(b));
      continue;
    }
    std::string utf8;
    append_utf8(utf8, cp);
    out += "[UNK_BYTE_0x";
    for (char c : utf8) {
      char hex[3];
      std::snprintf(hex, sizeof(hex), "%02x", uint8_t(c));
      out += hex;
    }
    out += text + "]";
  }
  return out;
}

// The byte of a "<0xNN>" token; -1 when the text has another form.
int parse_byte_token(std::string_view text) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  if (text.size() != 6 || !text.starts_with("<0x") || text[5] != '>') return -1;
  const int hi = hex(text[3]), lo = hex(text[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
  if (id < 0 || id >= n_vocab())
    throw InvalidArgument("token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                          std::to_string(n_vocab()) + ")");
  const uint8_t bits = impl_->attrs[id];
  if (!render_special && (bits & (attr::Unknown | attr::Control))) return "";
  const std::string& text = vocab_.tokens[id];
  if (bits & (attr::Unknown | attr::Control | attr::UserDefined)) return text;
  if (bits & attr::Normal) {
    if (vocab_.model == TokenizerModel::Bpe) return decode_byte_level(text);
    std::string out;  // SPM: U+2581 back to spaces
    for (size_t pos = 0; pos < text.size();) {
      if (text.compare(pos, kEscapedSpace.size(), kEscapedSpace) == 0) {
        out += ' ';
        pos += kEscapedSpace.size();
      } else {
        out += text[pos++];
      }
    }
    return out;
  }
  if (bits & attr::Byte) {
    const int b = parse_byte_token(text);
    return b >= 0 ? std::string(1, char(b)) : "";
  }
  return "";  // unused or undefined types render as nothing, as in llama.cpp
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  // llama.cpp's detokenize (remove_special = false): the space that the SPM prefix put in front of
  // the text is dropped from the first token. Unlike llama.cpp, no clean_up_tokenization_spaces
  // pass (gpt-2, llama-bpe) follows, so decode stays the exact inverse of encode.
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::string piece = token_to_piece(ids[i], render_special);
    if (i == 0 && impl_->add_space_prefix && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    out += piece;
  }
  return out;
}

bool Tokenizer::is_eog(int32_t id) const { return std::binary_search(vocab_.eog.begin(), vocab_.eog.end(), id); }

int32_t Tokenizer::find_token(std::string_view text) const {
  const auto it = token_ids_.find(text);
  return it == token_ids_.end() ? -1 : it->second;
}

}  // namespace ponder
