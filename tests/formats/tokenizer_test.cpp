// Tokenizer tests against llama.cpp's reference vectors (../shared/models/vocab, ../shared/refdata)
// plus hand-made cases for special tokens, malformed input and loader errors.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/pretokenize.h"
#include "formats/tokenizer.h"
#include "support/shared_data.h"
#include "support/temp_path.h"

using ponder::testing::temp_path;

namespace ponder {
namespace {

namespace fs = std::filesystem;

const std::string kShared = std::string(PONDER_SOURCE_DIR) + "/../shared";

#define SKIP_WITHOUT_SHARED()                  \
  do {                                         \
    PONDER_REQUIRE_PATH(kShared + "/models/vocab"); \
    PONDER_REQUIRE_PATH(kShared + "/refdata");      \
  } while (0)

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Loading a 150k-token vocabulary takes a moment, so each file is read once per test binary.
const Tokenizer& load(const std::string& path) {
  static std::map<std::string, Tokenizer> cache;
  auto it = cache.find(path);
  if (it == cache.end()) it = cache.emplace(path, Tokenizer::from_gguf(read_gguf(path))).first;
  return it->second;
}

const Tokenizer& vocab_file(const std::string& name) {
  return load(kShared + "/models/vocab/ggml-vocab-" + name + ".gguf");
}

std::string to_hex(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out += kHex[uint8_t(c) >> 4];
    out += kHex[uint8_t(c) & 15];
  }
  return out;
}

// ---- pre-tokenizer regexes (expected splits from Python's `regex` module on llama.cpp's regexes) --

std::vector<std::string> split(PretokenizerKind kind, std::string_view text) { return Pretokenizer(kind).split(text); }

TEST(TokenizerPretokenize, RegexSplits) {
  using V = std::vector<std::string>;
  const std::string nbsp = "\xC2\xA0", nel = "\xC2\x85";
  const std::string text = "I'VE 12345 apples," + nbsp + nbsp + "really?!\n\n  ok";
  EXPECT_EQ(split(PretokenizerKind::Gpt2, text),
            (V{"I", "'", "VE", " 12345", " apples", ",", nbsp, nbsp, "really", "?!", "\n\n ", " ok"}));
  EXPECT_EQ(split(PretokenizerKind::Llama3, text),
            (V{"I", "'VE", " ", "123", "45", " apples", ",", nbsp, nbsp + "really", "?!\n\n", " ", " ok"}));
  EXPECT_EQ(split(PretokenizerKind::Qwen2, text),
            (V{"I", "'VE", " ", "1", "2", "3", "4", "5", " apples", ",", nbsp, nbsp + "really", "?!\n\n", " ", " ok"}));
  // U+0085 is whitespace for llama.cpp (Unicode White_Space), unlike for PCRE2's own \s.
  const std::string text2 = "x" + nel + nel + "y\tz  ";
  EXPECT_EQ(split(PretokenizerKind::Gpt2, text2), (V{"x", nel, nel, "y", "\t", "z", "  "}));
  EXPECT_EQ(split(PretokenizerKind::Qwen2, text2), (V{"x", nel, nel + "y", "\tz", "  "}));
  EXPECT_EQ(split(PretokenizerKind::Qwen2, ""), V{});
  EXPECT_EQ(pretokenizer_kind("llama3"), PretokenizerKind::Llama3);
  EXPECT_EQ(pretokenizer_kind("deepseek-r1-qwen"), PretokenizerKind::Qwen2);
  EXPECT_EQ(pretokenizer_kind("falcon"), std::nullopt);
}

// ---- llama.cpp's test-tokenizer-0 vectors: 46 cases per vocabulary --------------------------

struct VocabCase {
  std::string text;
  std::vector<int32_t> ids;
};

// Format: see ../shared/models/vocab/README.md.
std::vector<VocabCase> read_vocab_cases(const std::string& gguf_path) {
  const std::string sep = "\n__ggml_vocab_test__\n";
  const std::string inp = read_file(gguf_path + ".inp");
  std::vector<std::string> texts;
  for (size_t pos = 0, next; (next = inp.find(sep, pos)) != std::string::npos; pos = next + sep.size())
    texts.push_back(inp.substr(pos, next - pos));
  std::istringstream out(read_file(gguf_path + ".out"));
  std::vector<VocabCase> cases;
  std::string line;
  for (size_t i = 0; std::getline(out, line); ++i) {
    VocabCase c{.text = i < texts.size() ? texts[i] : "", .ids = {}};
    std::istringstream ids(line);
    for (int32_t id; ids >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), texts.size()) << gguf_path;
  return cases;
}

class TokenizerVocab : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerVocab, MatchesReferenceIdsAndRoundTrips) {
  const std::string path = kShared + "/models/vocab/ggml-vocab-" + GetParam() + ".gguf";
  PONDER_REQUIRE_PATH(path);
  const Tokenizer& tok = load(path);
  const std::vector<VocabCase> cases = read_vocab_cases(path);
  ASSERT_EQ(cases.size(), 46u);
  for (const VocabCase& c : cases) {
    const std::vector<int32_t> ids = tok.encode(c.text, /*add_special=*/false, /*parse_special=*/false);
    EXPECT_EQ(ids, c.ids) << "text: '" << c.text << "'";
    EXPECT_EQ(tok.decode(ids), c.text);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerVocab, ::testing::Values("llama-spm", "llama-bpe", "qwen2", "gpt-2"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// ---- prompts and greedy outputs recorded from llama.cpp ----------------------------------------

class TokenizerRefdata : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizerRefdata, PromptTokensAndPiecesMatchLlamaCpp) {
  SKIP_WITHOUT_SHARED();
  const nlohmann::json ref = nlohmann::json::parse(read_file(kShared + "/refdata/" + GetParam() + "_llamacpp.json"));
  std::string model = ref["model"]["file"];
  // The dequantized F32 file is not shipped; its metadata, tokenizer included, is the Q8_0 file's.
  if (model == "tiny-qwen2-random-q8_0-dequant-f32.gguf") model = "tiny-qwen2-random-q8_0.gguf";
  const Tokenizer& tok = load(kShared + "/models/" + model);
  EXPECT_EQ(tok.n_vocab(), ref["model"]["n_vocab"].get<int32_t>());
  EXPECT_EQ(tok.bos(), ref["model"]["bos"].get<int32_t>());
  EXPECT_EQ(tok.eos(), ref["model"]["eos"].get<int32_t>());
  EXPECT_EQ(tok.vocab().add_bos, ref["model"]["add_bos"].get<bool>());
  EXPECT_EQ(tok.vocab().add_eos, ref["model"]["add_eos"].get<bool>());
  ASSERT_FALSE(ref["cases"].empty());
  for (const auto& c : ref["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const auto ids = tok.encode(c["prompt"].get<std::string>(), true, c["parse_special"].get<bool>());
    EXPECT_EQ(ids, c["prompt_tokens"].get<std::vector<int32_t>>());
    const auto pieces = c["prompt_pieces_hex"].get<std::vector<std::string>>();
    ASSERT_EQ(pieces.size(), ids.size());
    for (size_t i = 0; i < ids.size(); ++i)
      EXPECT_EQ(to_hex(tok.token_to_piece(ids[i])), pieces[i]) << "token " << ids[i];
    const auto greedy = c["greedy"]["tokens"].get<std::vector<int32_t>>();
    const auto greedy_hex = c["greedy"]["pieces_hex"].get<std::vector<std::string>>();
    ASSERT_EQ(greedy.size(), greedy_hex.size());
    for (size_t i = 0; i < greedy.size(); ++i)
      EXPECT_EQ(to_hex(tok.token_to_piece(greedy[i])), greedy_hex[i]) << "token " << greedy[i];
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerRefdata,
                         ::testing::Values("stories260K", "tiny_qwen2", "tiny_qwen2_q8_0",
                                           "tiny_qwen2_q8_0_dequant_f32", "tiny_r1distill"),
                         [](const auto& info) { return info.param; });

// ---- end of generation, special tokens, BOS/EOS ------------------------------------------------

TEST(TokenizerEog, TinyQwen2SetIsLlamaCpps) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& tok = load(kShared + "/models/tiny-qwen2-random.gguf");
  std::vector<int32_t> eog;
  for (int32_t id = 0; id < tok.n_vocab(); ++id)
    if (tok.is_eog(id)) eog.push_back(id);
  EXPECT_EQ(eog, (std::vector<int32_t>{128247, 151643, 151645}));
  EXPECT_EQ(tok.vocab().eog, eog);
  EXPECT_EQ(tok.find_token("</s>"), 128247);
  EXPECT_FALSE(tok.is_eog(-1));
  EXPECT_FALSE(tok.is_eog(tok.n_vocab()));
}

TEST(TokenizerEog, OtherVocabularies) {
  SKIP_WITHOUT_SHARED();
  EXPECT_EQ(vocab_file("llama-spm").vocab().eog, (std::vector<int32_t>{2}));
  EXPECT_EQ(vocab_file("llama-bpe").vocab().eog, (std::vector<int32_t>{128001, 128009}));
  EXPECT_EQ(vocab_file("gpt-2").vocab().eog, (std::vector<int32_t>{50256}));
  // R1 distill: EOS, "</s>", and Qwen2.5's fim_pad / repo_name / file_sep, as llama.cpp marks them.
  EXPECT_EQ(load(kShared + "/models/tiny-r1distill-random.gguf").vocab().eog,
            (std::vector<int32_t>{128247, 151643, 151662, 151663, 151664}));
}

TEST(TokenizerSpecial, ControlTokensOnlyWithParseSpecial) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& tok = vocab_file("qwen2");
  const std::string text = "<|im_start|>user";
  EXPECT_EQ(tok.encode(text, false, true), (std::vector<int32_t>{151644, 872}));
  const auto plain = tok.encode(text, false, false);
  EXPECT_GT(plain.size(), 2u);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 151644), 0);
  EXPECT_EQ(tok.decode(plain), text);
  // Several special tokens with text around them; the longest text wins where texts overlap.
  EXPECT_EQ(tok.encode("a<|im_end|><|endoftext|>b", false, true),
            (std::vector<int32_t>{64, 151645, 151643, 65}));
  // "</s>" is a normal token in this vocabulary, but llama.cpp gives it the control bit.
  EXPECT_EQ(tok.encode("x</s>", false, true), (std::vector<int32_t>{87, 128247}));
  EXPECT_NE(tok.encode("x</s>", false, false).back(), 128247);
}

TEST(TokenizerSpecial, UserDefinedTokensAlwaysMatch) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& qwen = vocab_file("qwen2");
  EXPECT_EQ(qwen.encode("[PAD151646]", false, false), (std::vector<int32_t>{151646}));
  const Tokenizer& r1 = load(kShared + "/models/tiny-r1distill-random.gguf");
  const auto ids = r1.encode("<think>\nok</think>", false, false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 151648);
  EXPECT_EQ(ids.back(), 151649);
  // Fill-in-the-middle tokens are user-defined in the file but get the control bit, so they need
  // parse_special like other control tokens.
  EXPECT_EQ(r1.encode("<|fim_prefix|>", false, true), (std::vector<int32_t>{151659}));
  EXPECT_GT(r1.encode("<|fim_prefix|>", false, false).size(), 1u);
}

TEST(TokenizerSpecial, SpmSpacePrefixFollowsEachSpecialToken) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& tok = vocab_file("llama-spm");
  const auto hello = tok.encode("Hello", false, false);
  auto expected = hello;
  expected.insert(expected.begin(), 2);
  EXPECT_EQ(tok.encode("</s>Hello", false, true), expected);  // as at the start of text
  EXPECT_EQ(tok.encode("<unk>", false, true), (std::vector<int32_t>{0}));
}

TEST(TokenizerSpecial, AddSpecial) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& spm = vocab_file("llama-spm");
  EXPECT_EQ(spm.encode("", true, false), (std::vector<int32_t>{1}));
  EXPECT_EQ(spm.encode("Hello", true, false).front(), 1);
  const Tokenizer& llama3 = vocab_file("llama-bpe");  // no add_bos key: llama.cpp adds BOS for this pre
  EXPECT_TRUE(llama3.vocab().add_bos);
  EXPECT_EQ(llama3.encode("Hello", true, false), (std::vector<int32_t>{128000, 9906}));
  const Tokenizer& gpt2 = vocab_file("gpt-2");
  EXPECT_FALSE(gpt2.vocab().add_bos);
  EXPECT_EQ(gpt2.encode("Hello", true, false), gpt2.encode("Hello", false, false));
}

TEST(TokenizerPieces, RenderSpecial) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& tok = vocab_file("qwen2");
  EXPECT_EQ(tok.token_to_piece(151644, true), "<|im_start|>");
  EXPECT_EQ(tok.token_to_piece(151644, false), "");
  EXPECT_EQ(tok.token_to_piece(151646, false), "[PAD151646]");  // user-defined: always its text
  EXPECT_EQ(tok.token_to_piece(220), " ");
  const std::vector<int32_t> ids = {151644, 872, 198};
  EXPECT_EQ(tok.decode(ids, true), "<|im_start|>user\n");
  EXPECT_EQ(tok.decode(ids, false), "user\n");
  EXPECT_THROW(tok.token_to_piece(-1), InvalidArgument);
  EXPECT_THROW(tok.token_to_piece(tok.n_vocab()), InvalidArgument);

  const Tokenizer& spm = vocab_file("llama-spm");
  EXPECT_EQ(spm.token_to_piece(1, false), "");
  EXPECT_EQ(spm.token_to_piece(1, true), "<s>");
  EXPECT_EQ(spm.token_to_piece(spm.find_token("<0x0A>")), "\n");
  // llama.cpp keeps the prefix space when the ids start with BOS (only the first token is stripped).
  EXPECT_EQ(spm.decode(spm.encode("Hi", true, false), false), " Hi");
  EXPECT_EQ(spm.decode(spm.encode("Hi", false, false)), "Hi");
}

TEST(TokenizerPieces, FindToken) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& tok = vocab_file("qwen2");
  EXPECT_EQ(tok.find_token("<|im_end|>"), 151645);
  EXPECT_EQ(tok.find_token("Hello"), 9707);
  EXPECT_EQ(tok.find_token("no such token, surely"), -1);
  EXPECT_EQ(tok.find_token(""), -1);
}

// ---- malformed UTF-8 -----------------------------------------------------------------------------

TEST(TokenizerInvalidUtf8, BpeReplacesBadBytesLikeLlamaCpp) {
  SKIP_WITHOUT_SHARED();
  const Tokenizer& tok = vocab_file("qwen2");
  // A stray continuation byte, a truncated 3-byte sequence, 0xFF, and a truncated 4-byte one at the end.
  const std::string bad = "a\x80 b\xE2\x82 c\xFF d\xF0\x9F\x98";
  const std::string rf = "\xEF\xBF\xBD";  // U+FFFD
  const std::string expected = "a" + rf + " b" + rf + rf + " c" + rf + " d" + rf + rf + rf;
  for (const std::string prefix : {"", "x", "\xC3", "12\n\n"}) {
    const auto ids = tok.encode(prefix + bad, false, false);
    const std::string clean_prefix = prefix == "\xC3" ? rf : prefix;
    EXPECT_EQ(tok.decode(ids), clean_prefix + expected);
    EXPECT_EQ(ids, tok.encode(clean_prefix + expected, false, false));
  }
  // Overlong forms and surrogates decode to their value, as in llama.cpp; no crash either way.
  EXPECT_EQ(tok.decode(tok.encode("\xC0\x80x", false, false)), std::string("\0x", 2));
  EXPECT_EQ(tok.decode(tok.encode("\xED\xA0\x80!", false, false)), "\xED\xA0\x80!");
  EXPECT_EQ(tok.decode(tok.encode("\xF7\xBF\xBF\xBF", false, false)), rf);  // above U+10FFFF
}

TEST(TokenizerInvalidUtf8, SpmFallsBackToBytes) {
  SKIP_WITHOUT_SHARED();
  for (const Tokenizer* tok : {&vocab_file("llama-spm"), &load(kShared + "/models/stories260K.gguf")}) {
    const std::string bad = "ab\x80\xFF" "cde fg\xE2\x82";  // 0xFF takes "cde" along
    EXPECT_EQ(tok->decode(tok->encode(bad, false, false)), bad);
    // As in llama.cpp, a lead byte takes the length its top bits announce, so 0xFF swallows the
    // escaped space after it; that piece is no token and falls back to bytes, U+2581 included.
    EXPECT_EQ(tok->decode(tok->encode("\xFF c", false, false)), "\xFF\xE2\x96\x81" "c");
  }
}

// ---- loader errors and speed -----------------------------------------------------------------------

GgufValue str(const std::string& s) { return GgufValue{s}; }
GgufValue str_array(const std::vector<std::string>& items) {
  GgufArray a{.type = GgufType::STRING, .items = {}};
  for (const auto& s : items) a.items.push_back(str(s));
  return GgufValue{a};
}

// Writes a tokenizer-only GGUF with `metadata` to a temp file and returns the loader's error.
std::string load_error(const std::string& name, const std::vector<std::pair<std::string, GgufValue>>& metadata) {
  const std::string path = temp_path("tokenizer_" + name + ".gguf");
  write_gguf(path, metadata, {});
  std::string message;
  try {
    Tokenizer::from_gguf(read_gguf(path));
  } catch (const FormatError& e) {
    message = e.what();
  }
  fs::remove(path);
  EXPECT_NE(message.find(path), std::string::npos) << "the error should name the file: " << message;
  return message;
}

TEST(TokenizerLoad, Errors) {
  const GgufValue tokens = str_array({"a", "b", "ab"});
  EXPECT_NE(load_error("no_tokens", {{"tokenizer.ggml.model", str("llama")}}).find("tokenizer.ggml.tokens"),
            std::string::npos);
  EXPECT_NE(load_error("no_model", {{"tokenizer.ggml.tokens", tokens}}).find("tokenizer.ggml.model"),
            std::string::npos);
  const std::string unknown =
      load_error("bad_model", {{"tokenizer.ggml.model", str("bert")}, {"tokenizer.ggml.tokens", tokens}});
  EXPECT_NE(unknown.find("tokenizer.ggml.model"), std::string::npos);
  EXPECT_NE(unknown.find("bert"), std::string::npos);
  const std::string pre = load_error("bad_pre", {{"tokenizer.ggml.model", str("gpt2")},
                                                 {"tokenizer.ggml.pre", str("falcon")},
                                                 {"tokenizer.ggml.tokens", tokens},
                                                 {"tokenizer.ggml.merges", str_array({"a b"})}});
  EXPECT_NE(pre.find("falcon"), std::string::npos);
  EXPECT_NE(load_error("no_merges", {{"tokenizer.ggml.model", str("gpt2")},
                                     {"tokenizer.ggml.pre", str("qwen2")},
                                     {"tokenizer.ggml.tokens", tokens}})
                .find("tokenizer.ggml.merges"),
            std::string::npos);
  EXPECT_NE(load_error("tokens_type", {{"tokenizer.ggml.model", str("llama")}, {"tokenizer.ggml.tokens", str("a")}})
                .find("tokenizer.ggml.tokens"),
            std::string::npos);
  GgufArray short_types{.type = GgufType::INT32, .items = {GgufValue{int32_t(1)}}};
  EXPECT_NE(load_error("short_types", {{"tokenizer.ggml.model", str("llama")},
                                       {"tokenizer.ggml.tokens", tokens},
                                       {"tokenizer.ggml.token_type", GgufValue{short_types}}})
                .find("tokenizer.ggml.token_type"),
            std::string::npos);
  const std::string duplicate = load_error(
      "duplicate", {{"tokenizer.ggml.model", str("llama")}, {"tokenizer.ggml.tokens", str_array({"a", "a"})}});
  EXPECT_NE(duplicate.find("twice"), std::string::npos);
}

TEST(TokenizerLoad, TinyBpeFile) {
  const std::string path = temp_path("tokenizer_tiny_bpe.gguf");
  // Byte-level alphabet for "a", "b", " " (U+0120) and merges "a b", "Ġ ab".
  write_gguf(path,
             {{"tokenizer.ggml.model", str("gpt2")},
              {"tokenizer.ggml.pre", str("gpt-2")},
              {"tokenizer.ggml.tokens", str_array({"a", "b", "\xC4\xA0", "ab", "\xC4\xA0" "ab"})},
              {"tokenizer.ggml.merges", str_array({"a b", "\xC4\xA0 ab"})},
              {"tokenizer.ggml.eos_token_id", GgufValue{uint32_t(0xFFFFFFFF)}}},
             {});
  const Tokenizer tok = Tokenizer::from_gguf(read_gguf(path));
  fs::remove(path);
  EXPECT_EQ(tok.encode("ab ab b", true, false), (std::vector<int32_t>{3, 4, 2, 1}));
  EXPECT_EQ(tok.eos(), -1);
  EXPECT_EQ(tok.bos(), -1);
  EXPECT_TRUE(tok.vocab().eog.empty());
}

// Reports the load time (no wall-clock limit in a unit test: timing is measured, not asserted).
TEST(TokenizerLoad, QwenVocabLoads) {
  SKIP_WITHOUT_SHARED();
  const GgufFile f = read_gguf(kShared + "/models/vocab/ggml-vocab-qwen2.gguf");
  const auto start = std::chrono::steady_clock::now();
  const Tokenizer tok = Tokenizer::from_gguf(f);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("from_gguf_seconds", std::to_string(seconds));
  std::printf("qwen2 vocab: Tokenizer::from_gguf took %.3f s\n", seconds);
  EXPECT_EQ(tok.n_vocab(), 151936);
}

}  // namespace
}  // namespace ponder
