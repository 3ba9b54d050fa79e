// GGUF reader and writer: the shared model files (written by llama.cpp), files encoded by hand here
// byte by byte, write/read round trips, and malformed files that must be refused with a FormatError
// naming the file and the problem.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "support/shared_data.h"
#include "core/fp16.h"
#include "formats/gguf.h"

namespace {

namespace fs = std::filesystem;
using ponder::FormatError;
using ponder::GgmlType;
using ponder::GgufArray;
using ponder::GgufFile;
using ponder::GgufTensor;
using ponder::GgufType;
using ponder::GgufValue;
using Metadata = std::vector<std::pair<std::string, GgufValue>>;

constexpr uint32_t kMagic = 0x46554747;  // "GGUF"

// ---- helpers ----

std::string model_path(const std::string& rel) {
  return std::string(PONDER_SOURCE_DIR) + "/../shared/models/" + rel;
}

#define SKIP_IF_MISSING(path) PONDER_REQUIRE_PATH(path)

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// f must throw a FormatError whose message contains both `name` and `needle`.
template <typename F>
testing::AssertionResult throws_format_error(F&& f, const std::string& name, const std::string& needle) {
  try {
    f();
  } catch (const FormatError& e) {
    const std::string m = e.what();
    if (m.find(name) == std::string::npos || m.find(needle) == std::string::npos)
      return testing::AssertionFailure() << "message \"" << m << "\" lacks \"" << name << "\" or \"" << needle << "\"";
    return testing::AssertionSuccess();
  } catch (const std::exception& e) {
    return testing::AssertionFailure() << "threw something other than FormatError: " << e.what();
  }
  return testing::AssertionFailure() << "did not throw; expected a FormatError about \"" << needle << "\"";
}

testing::AssertionResult rejects(const std::vector<uint8_t>& bytes, const std::string& needle) {
  const std::string name = "malformed-case.gguf";
  return throws_format_error([&] { ponder::parse_gguf(bytes, name); }, name, needle);
}

// A cut-short file is reported as truncated, or (when a count or length read before the cut claims
// more than is left) as something that "cannot fit".
testing::AssertionResult rejects_as_truncated(const std::vector<uint8_t>& bytes) {
  testing::AssertionResult r = rejects(bytes, "truncated");
  return r ? r : rejects(bytes, "cannot fit");
}

// Little-endian bytes, encoded by hand from the spec (ggml docs/gguf.md), independent of the writer.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& put(T x) {
    uint8_t raw[sizeof(T)];
    std::memcpy(raw, &x, sizeof(T));
    b.insert(b.end(), raw, raw + sizeof(T));
    return *this;
  }
  Bytes& u8(uint8_t x) { return put(x); }
  Bytes& u32(uint32_t x) { return put(x); }
  Bytes& u64(uint64_t x) { return put(x); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& append(const Bytes& o) {
    b.insert(b.end(), o.b.begin(), o.b.end());
    return *this;
  }
  Bytes& pad_to(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
};

// One key/value: key, value type, then the value's bytes.
Bytes kv(std::string_view key, uint32_t type, const Bytes& value) { return Bytes().str(key).u32(type).append(value); }
Bytes kv_u32(std::string_view key, uint32_t x) { return kv(key, 4, Bytes().u32(x)); }
Bytes kv_str(std::string_view key, std::string_view s) { return kv(key, 8, Bytes().str(s)); }

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

// A small file assembled from parts, so each malformed case changes one thing. The default is valid:
// two tensors of 32 bytes each, so the file ends exactly at the end of the last tensor's data.
struct HandFile {
  uint32_t magic = kMagic;
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors;  // override the counts in the header
  std::optional<uint64_t> n_kv;
  std::vector<Bytes> kvs = {kv_str("general.architecture", "llama"), kv_u32("llama.block_count", 1)};
  std::vector<TensorInfo> tensors = {{"a", {8}, 0, 0}, {"b", {4, 4}, 1, 32}};
  size_t alignment = 32;
  std::vector<uint8_t> data = pattern(64);

  static std::vector<uint8_t> pattern(size_t n, uint8_t seed = 1) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = uint8_t(i * 37 + seed);
    return v;
  }
  std::vector<uint8_t> bytes() const {
    Bytes o;
    o.u32(magic).u32(version).u64(n_tensors.value_or(tensors.size())).u64(n_kv.value_or(kvs.size()));
    for (const Bytes& k : kvs) o.append(k);
    for (const TensorInfo& t : tensors) {
      o.str(t.name).u32(uint32_t(t.ne.size()));
      for (uint64_t d : t.ne) o.u64(d);
      o.u32(t.type).u64(t.offset);
    }
    o.pad_to(alignment);
    o.b.insert(o.b.end(), data.begin(), data.end());
    return o.b;
  }
};

// Compares two values with floats compared bit for bit (so NaN payloads and -0.0 count).
bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type() != b.type()) return false;
  return std::visit([&](const auto& x) -> bool {
    using T = std::decay_t<decltype(x)>;
    const T& y = std::get<T>(b.v);
    if constexpr (std::is_same_v<T, GgufArray>) {
      if (x.type != y.type || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!same_value(x.items[i], y.items[i])) return false;
      return true;
    } else if constexpr (std::is_floating_point_v<T>) {
      return std::memcmp(&x, &y, sizeof(T)) == 0;
    } else {
      return x == y;
    }
  }, a.v);
}

void expect_same_metadata(const Metadata& got, const Metadata& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].first, want[i].first) << "metadata entry " << i;
    EXPECT_TRUE(same_value(got[i].second, want[i].second)) << "metadata key '" << want[i].first << "'";
  }
}

// A tensor that owns its bytes, for writing.
struct OwnedTensor {
  std::string name;
  std::vector<int64_t> ne;
  GgmlType type = GgmlType::F32;
  std::vector<uint8_t> bytes;
  ponder::GgufTensorData view() const { return {.name = name, .ne = ne, .type = type, .data = bytes}; }
};

std::vector<ponder::GgufTensorData> views(const std::vector<OwnedTensor>& ts) {
  std::vector<ponder::GgufTensorData> v;
  for (const OwnedTensor& t : ts) v.push_back(t.view());
  return v;
}

// Tensors of all four types with sizes that are not multiples of the alignment.
std::vector<OwnedTensor> odd_tensors() {
  std::vector<OwnedTensor> ts;
  std::vector<uint8_t> f32(7 * 3 * 4);
  for (int i = 0; i < 21; ++i) {
    const float x = float(i) * 0.37f - 3.0f;
    std::memcpy(&f32[size_t(i) * 4], &x, 4);
  }
  ts.push_back({"blk.0.f32_odd", {7, 3}, GgmlType::F32, f32});
  std::vector<uint8_t> f16;
  for (int i = 0; i < 5; ++i) {
    const uint16_t h = ponder::fp32_to_fp16(float(i) - 1.25f);
    f16.push_back(uint8_t(h)), f16.push_back(uint8_t(h >> 8));
  }
  ts.push_back({"f16_odd", {5}, GgmlType::F16, f16});
  std::vector<uint8_t> bf16;
  for (int i = 0; i < 6; ++i) {
    const uint16_t h = ponder::fp32_to_bf16(float(i) * 1000.5f);
    bf16.push_back(uint8_t(h)), bf16.push_back(uint8_t(h >> 8));
  }
  ts.push_back({"bf16_odd", {3, 1, 2}, GgmlType::BF16, bf16});
  ts.push_back({"q8_0_odd", {96, 5, 1, 1}, GgmlType::Q8_0, HandFile::pattern(3 * 5 * 34, 9)});
  ts.push_back({"f32_one", {1}, GgmlType::F32, HandFile::pattern(4, 3)});
  ts.push_back({"q8_0_one", {32}, GgmlType::Q8_0, HandFile::pattern(34, 5)});
  return ts;
}

// Where each tensor's data starts (relative to the data section) under ggml's layout: in order,
// each padded to the alignment.
std::vector<uint64_t> padded_offsets(const std::vector<OwnedTensor>& ts, uint64_t alignment, uint64_t* end) {
  std::vector<uint64_t> offsets;
  uint64_t at = 0;
  for (const OwnedTensor& t : ts) {
    offsets.push_back(at);
    at += (t.bytes.size() + alignment - 1) / alignment * alignment;
  }
  *end = at;
  return offsets;
}

struct TypedCase {
  std::string key;
  GgufValue value;
  Bytes encoded;  // value type, then the value, as the spec lays them out
};

GgufValue arr(GgufType t, std::vector<GgufValue> items) { return {GgufArray{t, std::move(items)}}; }

// One or more metadata values of each of the 13 types, nested arrays, empty strings and arrays.
std::vector<TypedCase> all_value_types() {
  const std::string utf8_with_nul("\xe4\xb8\xad\0x", 5);
  const GgufValue inner_i32 = arr(GgufType::INT32, {{int32_t(-1)}, {int32_t(7)}});
  const GgufValue inner_empty = arr(GgufType::INT32, {});
  const GgufValue inner_str = arr(GgufType::STRING, {{std::string("deep")}, {std::string()}});
  const GgufValue inner_nested = arr(GgufType::ARRAY, {arr(GgufType::UINT64, {}), arr(GgufType::BOOL, {{true}})});
  return {
      {"t.uint8", {uint8_t(200)}, Bytes().u32(0).u8(200)},
      {"t.int8", {int8_t(-100)}, Bytes().u32(1).put(int8_t(-100))},
      {"t.uint16", {uint16_t(65535)}, Bytes().u32(2).put(uint16_t(65535))},
      {"t.int16", {int16_t(-32768)}, Bytes().u32(3).put(int16_t(-32768))},
      {"t.uint32", {uint32_t(4000000000u)}, Bytes().u32(4).u32(4000000000u)},
      {"t.int32", {int32_t(-2000000000)}, Bytes().u32(5).put(int32_t(-2000000000))},
      {"t.float32", {-1.5e-38f}, Bytes().u32(6).put(-1.5e-38f)},
      {"t.float32.nan", {ponder::fp32_from_bits(0x7fc01234u)}, Bytes().u32(6).u32(0x7fc01234u)},
      {"t.float32.subnormal", {1e-45f}, Bytes().u32(6).u32(1)},
      {"t.bool.true", {true}, Bytes().u32(7).u8(1)},
      {"t.bool.false", {false}, Bytes().u32(7).u8(0)},
      {"t.string", {std::string("hello")}, Bytes().u32(8).str("hello")},
      {"t.string.empty", {std::string()}, Bytes().u32(8).u64(0)},
      {"t.string.utf8_nul", {utf8_with_nul}, Bytes().u32(8).str(utf8_with_nul)},
      {"t.array.empty", arr(GgufType::UINT8, {}), Bytes().u32(9).u32(0).u64(0)},
      {"t.array.strings", arr(GgufType::STRING, {{std::string()}, {std::string("a")}}),
       Bytes().u32(9).u32(8).u64(2).str("").str("a")},
      {"t.array.float32", arr(GgufType::FLOAT32, {{0.5f}, {-2.0f}, {3.25f}}),
       Bytes().u32(9).u32(6).u64(3).put(0.5f).put(-2.0f).put(3.25f)},
      {"t.array.bool", arr(GgufType::BOOL, {{true}, {false}}), Bytes().u32(9).u32(7).u64(2).u8(1).u8(0)},
      {"t.array.nested", arr(GgufType::ARRAY, {inner_i32, inner_empty, inner_str, inner_nested}),
       Bytes().u32(9).u32(9).u64(4)
           .u32(5).u64(2).put(int32_t(-1)).put(int32_t(7))  // [-1, 7]
           .u32(5).u64(0)                                   // []
           .u32(8).u64(2).str("deep").str("")               // ["deep", ""]
           .u32(9).u64(2).u32(10).u64(0).u32(7).u64(1).u8(1)},  // [[], [true]]
      {"t.array.empty_arrays", arr(GgufType::ARRAY, {}), Bytes().u32(9).u32(9).u64(0)},
      {"t.uint64", {uint64_t(UINT64_MAX)}, Bytes().u32(10).u64(UINT64_MAX)},
      {"t.int64", {int64_t(INT64_MIN)}, Bytes().u32(11).put(int64_t(INT64_MIN))},
      {"t.float64", {-0.0}, Bytes().u32(12).put(-0.0)},
      {"t.float64.big", {1e308}, Bytes().u32(12).put(1e308)},
  };
}

Metadata metadata_of(const std::vector<TypedCase>& cases) {
  Metadata m;
  for (const TypedCase& c : cases) m.emplace_back(c.key, c.value);
  return m;
}

// The hand-encoded file for some metadata and tensors, laid out as ggml does.
std::vector<uint8_t> hand_encode(const std::vector<Bytes>& kvs, const std::vector<OwnedTensor>& ts, uint64_t alignment) {
  HandFile h;
  h.kvs = kvs;
  h.alignment = alignment;
  h.tensors.clear();
  h.data.clear();
  uint64_t end = 0;
  const std::vector<uint64_t> offsets = padded_offsets(ts, alignment, &end);
  h.data.resize(end);
  for (size_t i = 0; i < ts.size(); ++i) {
    h.tensors.push_back({ts[i].name, {ts[i].ne.begin(), ts[i].ne.end()}, uint32_t(ts[i].type), offsets[i]});
    std::copy(ts[i].bytes.begin(), ts[i].bytes.end(), h.data.begin() + ptrdiff_t(offsets[i]));
  }
  return h.bytes();
}

// Structural checks every file must pass: each tensor is in bounds, aligned, sized by its shape and
// type, points where its offset says, and no two tensors overlap.
void check_layout(const GgufFile& f, std::span<const uint8_t> file) {
  ASSERT_TRUE(f.alignment > 0 && (f.alignment & (f.alignment - 1)) == 0);
  if (f.tensors.empty()) return;
  const uint64_t data_start = uint64_t(f.tensors[0].data - file.data()) - f.tensors[0].offset;
  EXPECT_EQ(data_start % f.alignment, 0u);
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const GgufTensor& t : f.tensors) {
    SCOPED_TRACE(f.path + ": tensor " + t.name);
    ASSERT_TRUE(t.ne.size() >= 1 && t.ne.size() <= 4);
    int64_t rows = 1;
    for (size_t d = 1; d < t.ne.size(); ++d) rows *= t.ne[d];
    EXPECT_EQ(t.n_bytes, uint64_t(ponder::ggml_row_size(t.type, t.ne[0]) * rows));
    EXPECT_EQ(t.offset % f.alignment, 0u);
    EXPECT_EQ(t.data, file.data() + data_start + t.offset);
    EXPECT_LE(data_start + t.offset + t.n_bytes, file.size());
    EXPECT_EQ(t.bytes().size(), t.n_bytes);
    EXPECT_EQ(f.find_tensor(t.name), &t);
    spans.emplace_back(t.offset, t.offset + t.n_bytes);
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) EXPECT_LE(spans[i - 1].second, spans[i].first) << "tensors overlap";
}

float f32_at(const GgufTensor& t, size_t i) {
  float x;
  std::memcpy(&x, t.data + 4 * i, 4);
  return x;
}

std::vector<int64_t> shape(std::initializer_list<int64_t> ne) { return ne; }

// ---- the shared model files ----

TEST(GgufModels, EveryModelFileParsesWithSaneLayout) {
  const std::string dir = model_path("");
  SKIP_IF_MISSING(dir);
  int n_files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.path().extension() != ".gguf") continue;
    SCOPED_TRACE(entry.path().string());
    const GgufFile f = ponder::read_gguf(entry.path().string());
    EXPECT_EQ(f.version, 3u);
    EXPECT_EQ(f.alignment, 32u);
    EXPECT_FALSE(f.get_string("general.architecture").empty());
    check_layout(f, f.map->bytes());
    ++n_files;
  }
  EXPECT_GE(n_files, 8) << "expected the 4 models and 4 vocab files";
}

TEST(GgufModels, Stories260K) {
  const std::string path = model_path("stories260K.gguf");
  SKIP_IF_MISSING(path);
  const GgufFile f = ponder::read_gguf(path);
  EXPECT_EQ(f.path, path);
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.metadata.size(), 19u);
  ASSERT_EQ(f.tensors.size(), 48u);
  EXPECT_EQ(f.metadata[0].first, "tokenizer.ggml.tokens");  // file order is kept
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(f.get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f.get_int("llama.block_count"), 5);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 8);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 4);
  EXPECT_EQ(f.get_int("llama.feed_forward_length"), 172);
  EXPECT_EQ(f.get_int("llama.context_length"), 2048);
  EXPECT_EQ(f.get_int("llama.rope.dimension_count"), 8);
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 1);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 2);
  EXPECT_EQ(f.get_int("tokenizer.ggml.padding_token_id"), 4294967295);
  EXPECT_EQ(f.get("llama.embedding_length").type(), GgufType::UINT32);
  EXPECT_EQ(f.get_float("llama.attention.layer_norm_rms_epsilon"), double(1e-5f));
  EXPECT_EQ(f.get_float("llama.rope.freq_base", 10000.0), 10000.0);  // absent: the fallback
  const GgufArray& tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING);
  ASSERT_EQ(tokens.items.size(), 512u);
  EXPECT_EQ(std::get<std::string>(tokens.items[0].v), "<unk>");
  EXPECT_EQ(std::get<std::string>(tokens.items[1].v), "<s>");
  EXPECT_EQ(std::get<std::string>(tokens.items[2].v), "</s>");
  EXPECT_EQ(f.get_array("tokenizer.ggml.scores", GgufType::FLOAT32).items.size(), 512u);
  const GgufArray& types = f.get_array("tokenizer.ggml.token_type", GgufType::INT32);
  ASSERT_EQ(types.items.size(), 512u);
  EXPECT_EQ(std::get<int32_t>(types.items[0].v), 2);
  EXPECT_EQ(std::get<int32_t>(types.items[1].v), 3);

  // Names, shapes and order, as llama.cpp's llama2.c converter wrote them.
  std::vector<std::pair<std::string, std::vector<int64_t>>> want = {
      {"token_embd.weight", {64, 512}}, {"output_norm.weight", {64}}, {"output.weight", {64, 512}}};
  for (int l = 0; l < 5; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    want.insert(want.end(), {{b + "attn_q.weight", {64, 64}},   {b + "attn_k.weight", {64, 32}},
                             {b + "attn_v.weight", {64, 32}},   {b + "attn_output.weight", {64, 64}},
                             {b + "attn_norm.weight", {64}},    {b + "ffn_gate.weight", {64, 172}},
                             {b + "ffn_down.weight", {172, 64}}, {b + "ffn_up.weight", {64, 172}},
                             {b + "ffn_norm.weight", {64}}});
  }
  ASSERT_EQ(want.size(), f.tensors.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(f.tensors[i].name, want[i].first);
    EXPECT_EQ(f.tensors[i].ne, want[i].second) << want[i].first;
    EXPECT_EQ(f.tensors[i].type, GgmlType::F32) << want[i].first;
  }
  const GgufTensor& embd = f.get_tensor("token_embd.weight");
  EXPECT_EQ(embd.n_elements(), 64 * 512);
  EXPECT_EQ(embd.n_bytes, 64u * 512 * 4);
  EXPECT_EQ(f.get_tensor("output_norm.weight").offset, 131072u);

  // Where the data is: header ends at byte 14152, the data section starts at 14176 and the last
  // tensor ends at the end of the file. Values read with Python's struct module.
  const uint8_t* base = f.map->bytes().data();
  EXPECT_EQ(embd.data, base + 14176);
  EXPECT_EQ(f.map->bytes().size(), 1185376u);
  const GgufTensor& last = f.tensors.back();
  EXPECT_EQ(14176 + last.offset + last.n_bytes, 1185376u);
  EXPECT_EQ(f32_at(embd, 0), -0.29474878311157227f);
  EXPECT_EQ(f32_at(embd, 3), 0.34057360887527466f);
  EXPECT_EQ(f32_at(f.get_tensor("output_norm.weight"), 1), 1.3673226833343506f);
  EXPECT_EQ(f32_at(last, 63), 1.234261155128479f);
  check_layout(f, f.map->bytes());
}

TEST(GgufModels, TinyQwen2Q8_0) {
  const std::string path = model_path("tiny-qwen2-random-q8_0.gguf");
  SKIP_IF_MISSING(path);
  const GgufFile f = ponder::read_gguf(path);
  EXPECT_EQ(f.metadata.size(), 23u);
  ASSERT_EQ(f.tensors.size(), 26u);
  EXPECT_EQ(f.get_string("general.architecture"), "qwen2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ(f.get_int("qwen2.embedding_length"), 64);
  EXPECT_EQ(f.get_int("qwen2.block_count"), 2);
  EXPECT_EQ(f.get_int("qwen2.attention.head_count_kv"), 2);
  EXPECT_EQ(f.get_int("general.file_type"), 7);
  EXPECT_EQ(f.get_float("qwen2.rope.freq_base"), 1e6);
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_bos_token", true));
  EXPECT_EQ(f.get_array("tokenizer.ggml.tokens", GgufType::STRING).items.size(), 151936u);
  EXPECT_EQ(f.get_array("tokenizer.ggml.merges", GgufType::STRING).items.size(), 151387u);
  EXPECT_EQ(f.tensors[0].name, "output_norm.weight");  // llama-quantize reorders the tensors

  const GgufTensor& embd = f.get_tensor("token_embd.weight");
  EXPECT_EQ(embd.type, GgmlType::Q8_0);
  EXPECT_EQ(embd.ne, shape({64, 151936}));
  EXPECT_EQ(embd.n_bytes, 2u * 151936 * 34);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr) << "tied embeddings: no output.weight";
  EXPECT_TRUE(throws_format_error([&] { f.get_tensor("output.weight"); }, path, "missing tensor 'output.weight'"));
  EXPECT_EQ(f.get_tensor("blk.0.attn_q.bias").type, GgmlType::F32);
  EXPECT_EQ(f.get_tensor("blk.1.ffn_down.weight").ne, shape({128, 64}));
  EXPECT_EQ(f.get_tensor("blk.1.ffn_down.weight").type, GgmlType::Q8_0);

  // The first Q8_0 block of token_embd (data section at 5930304, token_embd at offset 256).
  EXPECT_EQ(embd.data, f.map->bytes().data() + 5930304 + 256);
  ponder::BlockQ8_0 block;
  std::memcpy(&block, embd.data, sizeof block);
  EXPECT_EQ(block.d, 0x219f);
  EXPECT_EQ(block.qs[0], 72);
  EXPECT_EQ(block.qs[3], -18);
  EXPECT_EQ(f32_at(f.tensors[0], 0), 0.9795650243759155f);
  check_layout(f, f.map->bytes());
}

TEST(GgufModels, TinyQwen2F16) {
  const std::string path = model_path("tiny-qwen2-random.gguf");
  SKIP_IF_MISSING(path);
  const GgufFile f = ponder::read_gguf(path);
  ASSERT_EQ(f.tensors.size(), 26u);
  EXPECT_EQ(f.get_int("general.file_type"), 1);
  const GgufTensor& embd = f.get_tensor("token_embd.weight");
  EXPECT_EQ(embd.type, GgmlType::F16);
  EXPECT_EQ(embd.ne, shape({64, 151936}));
  EXPECT_EQ(embd.n_bytes, 64u * 151936 * 2);
  EXPECT_EQ(embd.data, f.map->bytes().data() + 5930304);
  uint16_t h[4];
  std::memcpy(h, embd.data, sizeof h);
  EXPECT_EQ(h[0], 0x3a50);
  EXPECT_EQ(h[3], 0xb22d);
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  EXPECT_EQ(f.tensors.back().name, "output_norm.weight");
  EXPECT_EQ(f.get_tensor("blk.0.attn_k.bias").ne, shape({32}));
}

TEST(GgufModels, TinyR1Distill) {
  const std::string path = model_path("tiny-r1distill-random.gguf");
  SKIP_IF_MISSING(path);
  const GgufFile f = ponder::read_gguf(path);
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "deepseek-r1-qwen");
  EXPECT_EQ(f.get_int("tokenizer.ggml.bos_token_id"), 151646);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id"), 151643);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token", false));
  const GgufArray& tokens = f.get_array("tokenizer.ggml.tokens", GgufType::STRING);
  ASSERT_EQ(tokens.items.size(), 151936u);
  EXPECT_EQ(std::get<std::string>(tokens.items[151648].v), "<think>");
  EXPECT_EQ(std::get<std::string>(tokens.items[151649].v), "</think>");
  EXPECT_NE(f.get_string("tokenizer.chat_template").find("<think>"), std::string::npos);
  EXPECT_EQ(f.get_tensor("token_embd.weight").data, f.map->bytes().data() + 5932288);
}

TEST(GgufModels, VocabOnlyFiles) {
  struct Want { const char* file; const char* pre; size_t n_tokens; };
  for (const Want& w : {Want{"ggml-vocab-gpt-2.gguf", "gpt-2", 50257}, Want{"ggml-vocab-llama-bpe.gguf", "llama-bpe", 128256},
                        Want{"ggml-vocab-llama-spm.gguf", "default", 32000}, Want{"ggml-vocab-qwen2.gguf", "qwen2", 151936}}) {
    const std::string path = model_path(std::string("vocab/") + w.file);
    SKIP_IF_MISSING(path);
    const GgufFile f = ponder::read_gguf(path);
    EXPECT_TRUE(f.tensors.empty()) << path;  // the file ends right after the metadata
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), w.pre);
    EXPECT_EQ(f.get_array("tokenizer.ggml.tokens", GgufType::STRING).items.size(), w.n_tokens);
  }
}

// ---- hand-encoded files ----

TEST(GgufHandEncoded, SmallFileParses) {
  const std::vector<uint8_t> bytes = HandFile().bytes();
  const GgufFile f = ponder::parse_gguf(bytes, "small.gguf");
  EXPECT_EQ(f.path, "small.gguf");
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 1);
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[1].name, "b");
  EXPECT_EQ(f.tensors[1].type, GgmlType::F16);
  EXPECT_EQ(f.tensors[1].ne, shape({4, 4}));
  EXPECT_EQ(f.tensors[1].data, bytes.data() + bytes.size() - 32);
  check_layout(f, bytes);

  HandFile v2;
  v2.version = 2;
  EXPECT_EQ(ponder::parse_gguf(v2.bytes(), "v2.gguf").version, 2u);
}

TEST(GgufHandEncoded, EveryValueTypeDecodes) {
  const std::vector<TypedCase> cases = all_value_types();
  std::vector<Bytes> kvs;
  for (const TypedCase& c : cases) kvs.push_back(Bytes().str(c.key).append(c.encoded));
  const std::vector<uint8_t> bytes = hand_encode(kvs, odd_tensors(), 32);
  const GgufFile f = ponder::parse_gguf(bytes, "types.gguf");
  expect_same_metadata(f.metadata, metadata_of(cases));
  EXPECT_EQ(f.get_int("t.int8"), -100);
  EXPECT_EQ(f.get_int("t.uint32"), 4000000000);
  EXPECT_EQ(f.get_int("t.int64"), INT64_MIN);
  EXPECT_TRUE(throws_format_error([&] { f.get_int("t.uint64"); }, "types.gguf", "too large"));
  EXPECT_EQ(f.get_float("t.float32"), double(-1.5e-38f));
  EXPECT_TRUE(f.get_bool("t.bool.true", false));
}

// ---- writer ----

class GgufWrite : public testing::Test {
 protected:
  void SetUp() override {
    const std::string test = testing::UnitTest::GetInstance()->current_test_info()->name();
    dir_ = fs::path(testing::TempDir()) / ("ponder_gguf_" + std::to_string(::getpid()) + "_" + test);
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Writes, reads back and checks everything; returns the bytes written.
  std::vector<uint8_t> round_trip(const Metadata& metadata, const std::vector<OwnedTensor>& ts, uint64_t alignment) {
    const std::string p = path("round_trip.gguf");
    ponder::write_gguf(p, metadata, views(ts));
    EXPECT_FALSE(fs::exists(p + ".tmp"));
    const GgufFile f = ponder::read_gguf(p);
    EXPECT_EQ(f.version, 3u);
    EXPECT_EQ(f.alignment, alignment);
    expect_same_metadata(f.metadata, metadata);
    EXPECT_EQ(f.tensors.size(), ts.size());
    uint64_t end = 0;
    const std::vector<uint64_t> offsets = padded_offsets(ts, alignment, &end);
    for (size_t i = 0; i < ts.size() && i < f.tensors.size(); ++i) {
      const GgufTensor& t = f.tensors[i];
      EXPECT_EQ(t.name, ts[i].name);
      EXPECT_EQ(t.ne, ts[i].ne);
      EXPECT_EQ(t.type, ts[i].type);
      EXPECT_EQ(t.offset, offsets[i]) << "ggml expects the tensors in order, each padded to the alignment";
      EXPECT_EQ(uint64_t(t.data - f.map->bytes().data()) % alignment, 0u);
      EXPECT_TRUE(std::equal(t.bytes().begin(), t.bytes().end(), ts[i].bytes.begin(), ts[i].bytes.end())) << t.name;
    }
    check_layout(f, f.map->bytes());
    if (!f.tensors.empty()) {
      const uint64_t data_start = uint64_t(f.tensors[0].data - f.map->bytes().data());
      EXPECT_EQ(data_start + end, f.map->bytes().size()) << "the last tensor is padded too, as ggml writes it";
    }
    return read_bytes(p);
  }

  fs::path dir_;
};

TEST_F(GgufWrite, EveryValueTypeAndTensorTypeRoundTrips) {
  const std::vector<TypedCase> cases = all_value_types();
  const std::vector<uint8_t> written = round_trip(metadata_of(cases), odd_tensors(), 32);
  // The writer's bytes are the spec's: the same as the file encoded by hand.
  std::vector<Bytes> kvs;
  for (const TypedCase& c : cases) kvs.push_back(Bytes().str(c.key).append(c.encoded));
  EXPECT_EQ(written, hand_encode(kvs, odd_tensors(), 32));
}

TEST_F(GgufWrite, Alignment64) {
  Metadata m = metadata_of(all_value_types());
  m.insert(m.begin() + 3, {"general.alignment", {uint32_t(64)}});
  const std::vector<uint8_t> written = round_trip(m, odd_tensors(), 64);
  std::vector<Bytes> kvs;
  for (const TypedCase& c : all_value_types()) kvs.push_back(Bytes().str(c.key).append(c.encoded));
  kvs.insert(kvs.begin() + 3, kv_u32("general.alignment", 64));
  EXPECT_EQ(written, hand_encode(kvs, odd_tensors(), 64));
}

TEST_F(GgufWrite, EmptyFileAndMetadataOnly) {
  round_trip({}, {}, 32);
  const std::vector<uint8_t> bytes = round_trip({{"general.architecture", {std::string("llama")}}}, {}, 32);
  EXPECT_EQ(bytes.size() % 32, 0u);  // the header is padded even without tensors
}

TEST_F(GgufWrite, RewritesStories260KIdentically) {
  const std::string src = model_path("stories260K.gguf");
  SKIP_IF_MISSING(src);
  const GgufFile f = ponder::read_gguf(src);
  std::vector<ponder::GgufTensorData> ts;
  for (const GgufTensor& t : f.tensors) ts.push_back({.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()});
  const std::string out = path("stories260K.gguf");
  ponder::write_gguf(out, f.metadata, ts);
  const GgufFile g = ponder::read_gguf(out);
  expect_same_metadata(g.metadata, f.metadata);
  ASSERT_EQ(g.tensors.size(), f.tensors.size());
  for (size_t i = 0; i < f.tensors.size(); ++i) {
    EXPECT_EQ(g.tensors[i].name, f.tensors[i].name);
    EXPECT_EQ(g.tensors[i].ne, f.tensors[i].ne);
    EXPECT_EQ(g.tensors[i].offset, f.tensors[i].offset);
    EXPECT_TRUE(std::ranges::equal(g.tensors[i].bytes(), f.tensors[i].bytes())) << f.tensors[i].name;
  }
  // llama.cpp's converter and our writer lay the file out the same way, to the byte.
  EXPECT_TRUE(read_bytes(out) == read_bytes(src)) << "rewritten stories260K differs from the original";
}

TEST_F(GgufWrite, RewritesQuantizedModelIdentically) {
  const std::string src = model_path("tiny-qwen2-random-q8_0.gguf");
  SKIP_IF_MISSING(src);
  const GgufFile f = ponder::read_gguf(src);
  std::vector<ponder::GgufTensorData> ts;
  for (const GgufTensor& t : f.tensors) ts.push_back({.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()});
  const std::string out = path("q8_0.gguf");
  ponder::write_gguf(out, f.metadata, ts);
  EXPECT_TRUE(read_bytes(out) == read_bytes(src)) << "rewritten tiny-qwen2-random-q8_0 differs from the original";
}

TEST_F(GgufWrite, RefusesWhatTheReaderWouldRefuse) {
  const std::vector<OwnedTensor> ok = odd_tensors();
  const std::string p = path("refused.gguf");
  auto expect_refused = [&](const Metadata& m, const std::vector<OwnedTensor>& ts, const std::string& needle) {
    try {
      ponder::write_gguf(p, m, views(ts));
      ADD_FAILURE() << "write_gguf accepted a file it should refuse (" << needle << ")";
    } catch (const ponder::InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(p));
    EXPECT_FALSE(fs::exists(p + ".tmp"));
  };
  expect_refused({{"general.alignment", {uint64_t(64)}}}, ok, "general.alignment has type uint64");
  expect_refused({{"general.alignment", {uint32_t(48)}}}, ok, "general.alignment is 48");
  expect_refused({{"k", {uint8_t(1)}}, {"k", {uint8_t(2)}}}, ok, "duplicate metadata key 'k'");
  expect_refused({{"k", arr(GgufType::UINT8, {{int8_t(1)}})}}, ok, "array of uint8 holds a int8");
  std::vector<OwnedTensor> ts = ok;
  ts[0].bytes.pop_back();
  expect_refused({}, ts, "'blk.0.f32_odd' has 83 bytes, its shape and type need 84");
  ts = ok;
  ts[1].name = ts[0].name;
  expect_refused({}, ts, "duplicate tensor name 'blk.0.f32_odd'");
  ts = ok;
  ts[3].ne = {48, 10};
  expect_refused({}, ts, "not a multiple of its block size 32");
  ts = ok;
  ts[0].ne = {0, 3};
  expect_refused({}, ts, "has dimension 0");
  ts = ok;
  ts[0].ne = {1, 2, 3, 4, 5};
  expect_refused({}, ts, "needs 1 to 4 dimensions");
  ts = ok;
  ts[0].type = GgmlType(12);  // Q4_K: a row of 7 is not whole super-blocks of 256
  expect_refused({}, ts, "not a multiple of its block size 256");
  ts = ok;
  ts[0].type = GgmlType(16);  // IQ2_XXS: a type ponder does not read
  expect_refused({}, ts, "has type IQ2_XXS");

  EXPECT_TRUE(throws_format_error([&] { ponder::write_gguf(path("no/such/dir/x.gguf"), {}, {}); },
                                  "no/such/dir/x.gguf", "cannot create"));
}

// ---- malformed files ----

TEST(GgufMalformed, BadMagic) {
  HandFile h;
  h.magic = 0x4c4d4747;  // "GGML"
  EXPECT_TRUE(rejects(h.bytes(), "bad magic 0x4c4d4747"));
  EXPECT_TRUE(rejects({}, "truncated file: magic"));
  EXPECT_TRUE(rejects({'G', 'G', 'U'}, "truncated file: magic"));
}

TEST(GgufMalformed, UnsupportedVersion) {
  for (uint32_t v : {0u, 1u, 4u, 99u, 0xffffffffu}) {
    HandFile h;
    h.version = v;
    EXPECT_TRUE(rejects(h.bytes(), "unsupported GGUF version " + std::to_string(v) + ", expected 2 or 3"));
  }
}

// Every prefix of a valid file is refused as truncated (or as a count that cannot fit); none crashes.
TEST(GgufMalformed, TruncatedAtEveryByte) {
  const std::vector<uint8_t> full = HandFile().bytes();
  ASSERT_NO_THROW(ponder::parse_gguf(full, "full.gguf"));
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + ptrdiff_t(cut));
    EXPECT_TRUE(rejects_as_truncated(prefix)) << "cut at byte " << cut << " of " << full.size();
  }
}

// The same over a file with every value type and odd-sized tensors. Our reader, like gguf-py's,
// does not require the padding after the last tensor, so cuts inside it are accepted.
TEST(GgufMalformed, TruncatedAtEveryByteOfEveryValueType) {
  std::vector<Bytes> kvs;
  for (const TypedCase& c : all_value_types()) kvs.push_back(Bytes().str(c.key).append(c.encoded));
  const std::vector<OwnedTensor> ts = odd_tensors();
  const std::vector<uint8_t> full = hand_encode(kvs, ts, 32);
  const GgufFile f = ponder::parse_gguf(full, "full.gguf");
  const size_t data_end = size_t(f.tensors.back().data - full.data()) + f.tensors.back().n_bytes;
  ASSERT_LT(data_end, full.size());
  for (size_t cut = 0; cut < full.size(); ++cut) {
    const std::vector<uint8_t> prefix(full.begin(), full.begin() + ptrdiff_t(cut));
    if (cut < data_end)
      EXPECT_TRUE(rejects_as_truncated(prefix)) << "cut at byte " << cut << " of " << full.size();
    else
      EXPECT_NO_THROW(ponder::parse_gguf(prefix, "cut.gguf")) << "cut at byte " << cut;
  }
}

// Every cut through the header of a real model (its 512 strings, floats and ints).
TEST(GgufMalformed, Stories260KTruncatedInItsHeader) {
  const std::string path = model_path("stories260K.gguf");
  SKIP_IF_MISSING(path);
  const std::vector<uint8_t> full = read_bytes(path);
  for (size_t cut = 0; cut < 14176 + 64; ++cut)
    ASSERT_TRUE(rejects_as_truncated({full.begin(), full.begin() + ptrdiff_t(cut)})) << "cut at byte " << cut;
  // Missing only the last byte of the last tensor.
  EXPECT_TRUE(rejects({full.begin(), full.end() - 1}, "'blk.4.ffn_norm.weight' needs 256 data bytes"));
}

// Each byte of a valid file overwritten with a few values: a FormatError or a valid file, never
// anything else (ASan/UBSan builds of the tests and the fuzzer catch the rest).
TEST(GgufMalformed, EveryByteCorrupted) {
  const std::vector<uint8_t> full = HandFile().bytes();
  for (size_t i = 0; i < full.size(); ++i)
    for (uint8_t x : {uint8_t(0), uint8_t(1), uint8_t(0x7f), uint8_t(0xff), uint8_t(full[i] ^ 0x80)}) {
      std::vector<uint8_t> bytes = full;
      bytes[i] = x;
      try {
        const GgufFile f = ponder::parse_gguf(bytes, "corrupt.gguf");
        for (const GgufTensor& t : f.tensors) {  // overlapping tensors are allowed, out of bounds not
          EXPECT_GE(t.data, bytes.data());
          EXPECT_LE(t.data + t.n_bytes, bytes.data() + bytes.size());
        }
      } catch (const FormatError& e) {
        EXPECT_NE(std::string(e.what()).find("corrupt.gguf"), std::string::npos) << e.what();
      }
    }
}

TEST(GgufMalformed, HugeCounts) {
  for (uint64_t n : {uint64_t(1) << 40, uint64_t(UINT64_MAX)}) {
    HandFile h;
    h.n_tensors = n;
    EXPECT_TRUE(rejects(h.bytes(), "tensor count " + std::to_string(n) + " cannot fit"));
    h = HandFile();
    h.n_kv = n;
    EXPECT_TRUE(rejects(h.bytes(), "metadata count " + std::to_string(n) + " cannot fit"));
  }
  HandFile h;
  h.n_kv = 3;  // one more than there are: the first tensor info is read as a key/value
  EXPECT_TRUE(rejects(h.bytes(), ""));
}

TEST(GgufMalformed, HugeStringLengths) {
  HandFile h;
  h.kvs.push_back(Bytes().u64(uint64_t(1) << 40));  // a key of 2^40 bytes
  EXPECT_TRUE(rejects(h.bytes(), "truncated file: metadata key needs 1099511627776 bytes"));
  h = HandFile();
  h.kvs.push_back(kv("k", 8, Bytes().u64(UINT64_MAX)));
  EXPECT_TRUE(rejects(h.bytes(), "truncated file: string value needs 18446744073709551615 bytes"));
  h = HandFile();
  h.kvs.push_back(kv("k", 9, Bytes().u32(8).u64(2).u64(1).u8('x').u64(uint64_t(1) << 62)));
  EXPECT_TRUE(rejects(h.bytes(), "string value needs 4611686018427387904 bytes"));
  h = HandFile();
  h.tensors[1].name = std::string(100, 'n');
  std::vector<uint8_t> bytes = h.bytes();
  const std::string needle = std::string(1, char(100)) + std::string(7, '\0') + std::string(100, 'n');
  const auto at = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
  ASSERT_NE(at, bytes.end());
  at[5] = 0x01;  // the name's length becomes 2^40 + 100
  EXPECT_TRUE(rejects(bytes, "truncated file: tensor name needs 1099511627876 bytes"));
}

TEST(GgufMalformed, HugeArrayLengths) {
  HandFile h;
  h.kvs.push_back(kv("k", 9, Bytes().u32(4).u64(uint64_t(1) << 61)));
  EXPECT_TRUE(rejects(h.bytes(), "key 'k': array of 2305843009213693952 uint32 values cannot fit"));
  h = HandFile();
  h.kvs.push_back(kv("k", 9, Bytes().u32(9).u64(UINT64_MAX)));
  EXPECT_TRUE(rejects(h.bytes(), "key 'k': array of 18446744073709551615 array values cannot fit"));
  h = HandFile();  // an inner array that claims more than is left
  h.kvs.push_back(kv("k", 9, Bytes().u32(9).u64(1).u32(0).u64(1000)));
  EXPECT_TRUE(rejects(h.bytes(), "array of 1000 uint8 values cannot fit"));
}

TEST(GgufMalformed, ArraysNestedTooDeep) {
  Bytes deep;
  for (int i = 0; i < 9; ++i) deep.u32(9).u64(1);
  deep.u32(0).u64(0);
  HandFile h;
  h.kvs.push_back(kv("k", 9, deep));
  EXPECT_TRUE(rejects(h.bytes(), "key 'k': arrays nested deeper than 8"));
}

TEST(GgufMalformed, UnknownValueTypes) {
  for (uint32_t t : {13u, 100u, 0xffffffffu}) {
    HandFile h;
    h.kvs.insert(h.kvs.begin() + 1, kv("weird", t, Bytes().u32(0)));
    EXPECT_TRUE(rejects(h.bytes(), "key 'weird': unknown value type " + std::to_string(t)));
    h = HandFile();
    h.kvs.push_back(kv("weird", 9, Bytes().u32(t).u64(0)));
    EXPECT_TRUE(rejects(h.bytes(), "key 'weird': unknown array element type " + std::to_string(t)));
  }
}

TEST(GgufMalformed, UnsupportedTensorTypes) {
  const std::pair<uint32_t, const char*> cases[] = {{16, "IQ2_XXS"}, {9, "Q8_1"}, {15, "Q8_K"}, {28, "F64"}, {99, "type 99"}};
  for (const auto& [type, name] : cases) {
    HandFile h;
    h.tensors[0].type = type;
    EXPECT_TRUE(rejects(h.bytes(), std::string("tensor 'a' has type ") + name +
                                       ", ponder reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL and IQ4_XS"));
  }
}

TEST(GgufMalformed, TensorOutOfBounds) {
  HandFile h;
  h.tensors[1].offset = 64;
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'b' needs 32 data bytes at data offset 64 but the data section has 64 bytes"));
  h.tensors[1].offset = uint64_t(1) << 63;  // aligned, and would wrap if added carelessly
  EXPECT_TRUE(rejects(h.bytes(), "data offset 9223372036854775808"));
  h = HandFile();
  h.tensors[0].ne = {uint64_t(1) << 40};  // 4 TiB of F32
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'a' needs 4398046511104 data bytes"));
  h = HandFile();
  h.data.resize(40);
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'b' needs 32 data bytes at data offset 32 but the data section has 40 bytes"));
}

// 2^62 F32 elements are 2^64 bytes: the size must not wrap to 0 and let the tensor through.
TEST(GgufMalformed, ElementCountOverflow) {
  for (uint32_t type : {0u, 1u, 8u, 30u}) {
    HandFile h;
    h.tensors[0] = {"a", {uint64_t(1) << 31, uint64_t(1) << 31}, type, 0};
    EXPECT_TRUE(rejects(h.bytes(), "tensor 'a' has an impossible dimension ne[1] = 2147483648")) << type;
    h.tensors[0].ne = {uint64_t(1) << 20, uint64_t(1) << 20, uint64_t(1) << 20, uint64_t(1) << 20};
    EXPECT_TRUE(rejects(h.bytes(), "impossible dimension ne[3]")) << type;
    h.tensors[0].ne = {UINT64_MAX};
    EXPECT_TRUE(rejects(h.bytes(), "impossible dimension ne[0] = 18446744073709551615")) << type;
  }
}

TEST(GgufMalformed, MisalignedOffset) {
  HandFile h;
  h.tensors[1].offset = 16;
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'b' offset 16 is not a multiple of the alignment 32"));
  h = HandFile();
  h.kvs.push_back(kv_u32("general.alignment", 64));
  h.alignment = 64;
  h.data.resize(96);
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'b' offset 32 is not a multiple of the alignment 64"));
  h.tensors[1].offset = 64;
  const std::vector<uint8_t> ok = h.bytes();
  const GgufFile f = ponder::parse_gguf(ok, "aligned64.gguf");
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(uint64_t(f.tensors[1].data - ok.data()) % 64, 0u);
}

TEST(GgufMalformed, BadDimensionCounts) {
  for (uint32_t n_dims : {0u, 5u, 0xffffffffu}) {
    HandFile h;
    h.tensors[1].ne.assign(std::min(n_dims, 5u), 1);
    std::vector<uint8_t> bytes = h.bytes();
    if (n_dims == 0xffffffffu) {  // patch the count: 5 dims are written, 2^32-1 claimed
      const std::string needle = std::string("\x01\0\0\0\0\0\0\0b", 9) + std::string("\x05\0\0\0", 4);
      auto at = std::search(bytes.begin(), bytes.end(), needle.begin(), needle.end());
      ASSERT_NE(at, bytes.end());
      std::fill(at + 9, at + 13, 0xff);
    }
    EXPECT_TRUE(rejects(bytes, "tensor 'b' has " + std::to_string(n_dims) + " dimensions, expected 1 to 4"));
  }
}

TEST(GgufMalformed, ZeroDimension) {
  HandFile h;
  h.tensors[1].ne = {4, 0};
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'b' has a zero dimension ne[1] = 0"));
  h.tensors[1].ne = {0};
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'b' has a zero dimension ne[0] = 0"));
}

TEST(GgufMalformed, DuplicateKeyAndTensorName) {
  HandFile h;
  h.kvs.push_back(kv_u32("llama.block_count", 2));
  EXPECT_TRUE(rejects(h.bytes(), "duplicate metadata key 'llama.block_count'"));
  h = HandFile();
  h.tensors[1].name = "a";
  EXPECT_TRUE(rejects(h.bytes(), "duplicate tensor name 'a'"));
}

TEST(GgufMalformed, BadAlignment) {
  for (uint32_t al : {0u, 3u, 48u, 0xffffffffu}) {
    HandFile h;
    h.kvs.push_back(kv_u32("general.alignment", al));
    EXPECT_TRUE(rejects(h.bytes(), "general.alignment is " + std::to_string(al) + ", expected a power of two"));
  }
  HandFile h;
  h.kvs.push_back(kv("general.alignment", 10, Bytes().u64(32)));
  EXPECT_TRUE(rejects(h.bytes(), "general.alignment has type uint64, expected uint32"));
  h = HandFile();
  h.kvs.push_back(kv_str("general.alignment", "32"));
  EXPECT_TRUE(rejects(h.bytes(), "general.alignment has type string, expected uint32"));
}

TEST(GgufMalformed, BoolOutOfRange) {
  HandFile h;
  h.kvs.push_back(kv("flag", 7, Bytes().u8(2)));
  EXPECT_TRUE(rejects(h.bytes(), "key 'flag': bool value 2, expected 0 or 1"));
  h = HandFile();
  h.kvs.push_back(kv("flags", 9, Bytes().u32(7).u64(3).u8(1).u8(0).u8(255)));
  EXPECT_TRUE(rejects(h.bytes(), "key 'flags': bool value 255"));
}

TEST(GgufMalformed, Q8_0RowNotWholeBlocks) {
  HandFile h;
  h.tensors[0] = {"q", {33, 2}, 8, 0};
  EXPECT_TRUE(rejects(h.bytes(), "tensor 'q' of type Q8_0 has ne[0] = 33, not a multiple of its block size 32"));
  h.tensors[0] = {"q", {16}, 8, 0};
  EXPECT_TRUE(rejects(h.bytes(), "ne[0] = 16"));
  h.tensors[0] = {"q", {1, 32}, 8, 0};  // 32 elements in all, but rows of 1
  EXPECT_TRUE(rejects(h.bytes(), "ne[0] = 1,"));
}

TEST(GgufMalformed, GettersNameFileAndKey) {
  const std::vector<uint8_t> bytes = HandFile().bytes();
  const GgufFile f = ponder::parse_gguf(bytes, "model-x.gguf");
  const std::string n = "model-x.gguf";
  EXPECT_TRUE(throws_format_error([&] { f.get_string("tokenizer.ggml.model"); }, n,
                                  "missing required metadata key 'tokenizer.ggml.model'"));
  EXPECT_TRUE(throws_format_error([&] { f.get_int("llama.embedding_length"); }, n,
                                  "missing required metadata key 'llama.embedding_length'"));
  EXPECT_TRUE(throws_format_error([&] { f.get_string("llama.block_count"); }, n,
                                  "metadata key 'llama.block_count' has type uint32, expected string"));
  EXPECT_TRUE(throws_format_error([&] { f.get_int("general.architecture"); }, n,
                                  "metadata key 'general.architecture' has type string, expected an integer"));
  EXPECT_TRUE(throws_format_error([&] { f.get_float("llama.block_count"); }, n, "expected float32 or float64"));
  EXPECT_TRUE(throws_format_error([&] { f.get_bool("llama.block_count", false); }, n, "expected bool"));
  EXPECT_TRUE(throws_format_error([&] { f.get_array("llama.block_count", GgufType::STRING); }, n,
                                  "expected array of string"));
  EXPECT_TRUE(throws_format_error([&] { f.get_tensor("output.weight"); }, n, "missing tensor 'output.weight'"));
  EXPECT_EQ(f.get_int("llama.embedding_length", 7), 7);
  EXPECT_TRUE(f.get_bool("absent", true));
  // A copy is a whole value: its lookups work on its own vectors.
  const GgufFile copy = f;
  EXPECT_EQ(copy.find("llama.block_count"), &copy.metadata[1].second);
  EXPECT_EQ(copy.find_tensor("b"), &copy.tensors[1]);
}

TEST(GgufMalformed, ReadGgufNamesThePath) {
  const std::string dir = testing::TempDir() + "ponder_gguf_read_" + std::to_string(::getpid());
  fs::create_directories(dir);
  const std::string bad = dir + "/bad-version.gguf";
  HandFile h;
  h.version = 1;
  const std::vector<uint8_t> bytes = h.bytes();
  std::ofstream(bad, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  EXPECT_TRUE(throws_format_error([&] { ponder::read_gguf(bad); }, bad, "unsupported GGUF version 1"));
  const std::string empty = dir + "/empty.gguf";
  std::ofstream(empty, std::ios::binary).flush();
  EXPECT_TRUE(throws_format_error([&] { ponder::read_gguf(empty); }, empty, "truncated file: magic"));
  EXPECT_TRUE(throws_format_error([&] { ponder::read_gguf(dir + "/absent.gguf"); }, dir + "/absent.gguf", "cannot open"));
  EXPECT_TRUE(throws_format_error([&] { ponder::read_gguf(dir); }, dir, "not a regular file"));
  fs::remove_all(dir);
}

}  // namespace
