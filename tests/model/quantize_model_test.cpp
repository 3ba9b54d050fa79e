// `ponder quantize` against llama.cpp 0.5.0's llama-quantize (no imatrix): on the 24 files of
// ../shared/models/kq the same tensor names, order and types, the same metadata and the same
// bytes (a block whose bytes differ must reconstruct the source no worse than llama.cpp's); the
// per-tensor rules of the mixes on model shapes the files do not have (more layers, GQA, 70B, odd
// rows); `ponder init --dtype` and `ponder export --dtype` equal to quantizing their F32 output.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <span>
#include <gtest/gtest.h>
#include <omp.h>

#include "core/error.h"
#include "core/fp16.h"
#include "formats/gguf.h"
#include "kernels/quant.h"
#include "model/forward.h"
#include "model/init.h"
#include "model/model.h"
#include "model/quantize_model.h"
#include "support/run_cli.h"
#include "support/shared_data.h"
#include "support/temp_path.h"
#include "train/checkpoint.h"
#include "train/char_vocab.h"
#include "train/model_io.h"

namespace ponder {
namespace {

using ::ponder::testing::run_cli;
using ::ponder::testing::shared_path;
using ::ponder::testing::slurp;
using ::ponder::testing::temp_path;

std::vector<GgufTensorData> tensor_data(const GgufFile& f) {
  std::vector<GgufTensorData> out;
  for (const GgufTensor& t : f.tensors) out.push_back({.name = t.name, .ne = t.ne, .type = t.type, .data = t.bytes()});
  return out;
}

// Element i of a float tensor.
float value_at(const GgufTensor& t, int64_t i) {
  if (t.type == GgmlType::F32) {
    float v;
    std::memcpy(&v, t.data + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, t.data + 2 * i, 2);
  return t.type == GgmlType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

// Sum of squared errors of one block against the source values it stands for.
double block_sse(GgmlType type, const uint8_t* block, const GgufTensor& src, int64_t first) {
  const int64_t n = ggml_block_size(type);
  std::vector<float> y(static_cast<size_t>(n));
  quant_type(type)->dequantize(y.data(), block, n);
  double e = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = double(y[size_t(i)]) - double(value_at(src, first + i));
    e += d * d;
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// The 24 reference files.

struct RefCase {
  const char* model;  // tiny-llama-kq | tiny-qwen2-kq
  const char* type;   // llama-quantize's TYPE, lower case as in the file names
};

class QuantizeModelFile : public ::testing::TestWithParam<RefCase> {};

TEST_P(QuantizeModelFile, MatchesLlamaQuantize) {
  const RefCase c = GetParam();
  const std::string src_rel = std::string("models/kq/") + c.model + ".gguf";
  const std::string ref_rel = std::string("models/kq/") + c.model + "-" + c.type + ".gguf";
  PONDER_REQUIRE_SHARED(src_rel);
  PONDER_REQUIRE_SHARED(ref_rel);
  const GgufFile src = read_gguf(shared_path(src_rel));
  const GgufFile ref = read_gguf(shared_path(ref_rel));
  const QuantizedModel q = quantize_model(src.metadata, tensor_data(src), parse_quant_mix(c.type), src.path);

  ASSERT_EQ(q.metadata.size(), ref.metadata.size());
  for (size_t i = 0; i < ref.metadata.size(); ++i) {
    EXPECT_EQ(q.metadata[i].first, ref.metadata[i].first) << i;
    EXPECT_TRUE(q.metadata[i].second == ref.metadata[i].second) << ref.metadata[i].first;
  }
  ASSERT_EQ(q.tensors.size(), ref.tensors.size());
  int64_t n_blocks = 0, n_diff = 0;
  for (size_t i = 0; i < ref.tensors.size(); ++i) {
    const GgufTensor& r = ref.tensors[i];
    const GgufTensorData& t = q.tensors[i];
    ASSERT_EQ(t.name, r.name) << "tensor " << i;
    ASSERT_EQ(t.ne, r.ne) << r.name;
    ASSERT_EQ(t.type, r.type) << r.name << ": " << ggml_type_name(uint32_t(t.type)) << " vs llama.cpp's "
                              << ggml_type_name(uint32_t(r.type));
    ASSERT_EQ(t.data.size(), r.n_bytes) << r.name;
    const int64_t block_bytes = ggml_type_size(r.type), block = ggml_block_size(r.type);
    const int64_t nb = int64_t(r.n_bytes) / block_bytes;
    if (quant_type(r.type) != nullptr) n_blocks += nb;  // the figure counts quantized blocks
    int64_t diff = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* ours = t.data.data() + b * block_bytes;
      const uint8_t* theirs = r.data + b * block_bytes;
      if (std::memcmp(ours, theirs, size_t(block_bytes)) == 0) continue;
      ++diff;
      ASSERT_NE(quant_type(r.type), nullptr) << r.name << ": an unquantized tensor differs";
      const GgufTensor& s = src.get_tensor(r.name);
      const double e_ours = block_sse(r.type, ours, s, b * block), e_theirs = block_sse(r.type, theirs, s, b * block);
      EXPECT_LE(e_ours, e_theirs * (1 + 1e-6) + 1e-12)
          << r.name << " block " << b << ": ponder's block reconstructs the source worse than llama.cpp's";
    }
    if (diff > 0)
      std::printf("  %s %s: %lld of %lld blocks differ (each no worse than llama.cpp's)\n", ref_rel.c_str(),
                  r.name.c_str(), (long long)diff, (long long)nb);
    n_diff += diff;
  }
  std::printf("%s: %zu tensors, %lld of %lld quantized blocks byte-identical\n", ref_rel.c_str(), ref.tensors.size(),
              (long long)(n_blocks - n_diff), (long long)n_blocks);
  RecordProperty("differing_blocks", int(n_diff));
}

std::vector<RefCase> ref_cases() {
  std::vector<RefCase> out;
  for (const char* m : {"tiny-llama-kq", "tiny-qwen2-kq"})
    for (const char* t : {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k_m", "q4_k_m", "q5_k_m", "q6_k", "iq4_nl", "iq4_xs"})
      out.push_back({m, t});
  return out;
}

INSTANTIATE_TEST_SUITE_P(QuantizeFiles, QuantizeModelFile, ::testing::ValuesIn(ref_cases()),
                         [](const ::testing::TestParamInfo<RefCase>& i) {
                           std::string s = std::string(i.param.model) + "_" + i.param.type;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

// The CLI end to end: the written file equals llama-quantize's, byte for byte.
TEST(QuantizeCli, WritesTheSameFileAsLlamaQuantize) {
  PONDER_REQUIRE_SHARED("models/kq/tiny-qwen2-kq-q4_k_m.gguf");
  const std::string out = temp_path("cli-q4_k_m.gguf");
  const auto r = run_cli("quantize " + shared_path("models/kq/tiny-qwen2-kq.gguf") + " " + out + " Q4_k_M -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(slurp(out) == slurp(shared_path("models/kq/tiny-qwen2-kq-q4_k_m.gguf")));
  std::filesystem::remove(out);
}

TEST(QuantizeCli, ClearErrors) {
  PONDER_REQUIRE_SHARED("models/kq/tiny-qwen2-kq-q4_0.gguf");
  const std::string src = shared_path("models/kq/tiny-qwen2-kq.gguf"), out = temp_path("err.gguf");
  struct Case {
    std::string args, needle;
  };
  const Case cases[] = {
      {"quantize " + src + " " + out + " Q7_K", "Q4_K_M"},  // lists the valid names
      {"quantize " + src + " " + out + " Q7_K", "Q7_K"},
      {"quantize /nonexistent/model.gguf " + out + " q4_0", "/nonexistent/model.gguf"},
      {"quantize " + shared_path("models/kq/tiny-qwen2-kq-q4_0.gguf") + " " + out + " q8_0", "'blk.0.attn_k.weight' is Q4_0"},
      {"init --preset qwen2-tiny --dtype q9_k --vocab " + src + " -o " + out, "Q4_K_M"},
      {"export --checkpoint /nonexistent.bin --dtype q9_k -o " + out, "q9_k"},
  };
  for (const Case& c : cases) {
    const auto r = run_cli(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_LT(r.exit_code, 128) << c.args;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << c.args << "\nstderr: " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(out));
}

// Rows are split among threads; the bytes are the same for any thread count.
TEST(QuantizeModel, SameBytesForAnyThreadCount) {
  PONDER_REQUIRE_SHARED("models/kq/tiny-qwen2-kq.gguf");
  const GgufFile src = read_gguf(shared_path("models/kq/tiny-qwen2-kq.gguf"));
  const int threads = omp_get_max_threads();
  for (const char* type : {"Q4_K_M", "IQ4_XS", "Q5_1"}) {
    omp_set_num_threads(1);
    const QuantizedModel a = quantize_model(src.metadata, tensor_data(src), parse_quant_mix(type), src.path);
    omp_set_num_threads(3);
    const QuantizedModel b = quantize_model(src.metadata, tensor_data(src), parse_quant_mix(type), src.path);
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); ++i)
      EXPECT_TRUE(std::equal(a.tensors[i].data.begin(), a.tensors[i].data.end(), b.tensors[i].data.begin(),
                             b.tensors[i].data.end()))
          << type << " " << a.tensors[i].name;
  }
  omp_set_num_threads(threads);
}

// ---------------------------------------------------------------------------------------------
// The per-tensor rules on shapes the reference files do not have (checked by hand against
// llama-quantize on models of these shapes written by `ponder init`).

// A llama-style model's tensors in converter order: E = n_embd, F = n_ff, kv = K/V rows.
std::vector<TensorInfo> model_tensors(int n_layer, int64_t E, int64_t kv, int64_t F, bool tied, GgmlType type = GgmlType::F16) {
  std::vector<TensorInfo> t = {{"token_embd.weight", {E, 512}, type}};
  for (int l = 0; l < n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    t.push_back({b + "attn_norm.weight", {E}, GgmlType::F32});
    t.push_back({b + "attn_q.weight", {E, E}, type});
    t.push_back({b + "attn_k.weight", {E, kv}, type});
    t.push_back({b + "attn_v.weight", {E, kv}, type});
    t.push_back({b + "attn_output.weight", {E, E}, type});
    t.push_back({b + "ffn_norm.weight", {E}, GgmlType::F32});
    t.push_back({b + "ffn_gate.weight", {E, F}, type});
    t.push_back({b + "ffn_up.weight", {E, F}, type});
    t.push_back({b + "ffn_down.weight", {F, E}, type});
  }
  t.push_back({"output_norm.weight", {E}, GgmlType::F32});
  if (!tied) t.push_back({"output.weight", {E, 512}, type});
  return t;
}

// name -> planned type
std::map<std::string, GgmlType> plan_types(const std::vector<TensorInfo>& t, const QuantModelInfo& info, const char* mix) {
  std::map<std::string, GgmlType> out;
  for (const TensorPlan& p : plan_quantization(t, info, parse_quant_mix(mix))) out[t[p.input].name] = p.type;
  return out;
}

std::string layer_types(const std::map<std::string, GgmlType>& types, int n_layer, const char* suffix) {
  std::string s;
  for (int l = 0; l < n_layer; ++l) {
    if (l > 0) s += ' ';
    s += ggml_type_name(uint32_t(types.at("blk." + std::to_string(l) + "." + suffix)));
  }
  return s;
}

TEST(QuantizeModel, MixRulesOn16LayersWithGqa4) {
  const QuantModelInfo info{.arch = "llama", .n_layer = 16, .n_head = 8, .n_head_kv = 2};
  const auto t = model_tensors(16, 256, 64, 512, /*tied=*/true);
  // Q4_K_M: attn_v and ffn_down get Q6_K in the first and last eighth and every third layer between.
  const std::string more_bits = "Q6_K Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q4_K Q4_K Q6_K Q6_K Q6_K";
  auto q4km = plan_types(t, info, "q4_k_m");
  EXPECT_EQ(layer_types(q4km, 16, "attn_v.weight"), more_bits);
  EXPECT_EQ(layer_types(q4km, 16, "ffn_down.weight"), more_bits);
  EXPECT_EQ(q4km.at("token_embd.weight"), GgmlType::Q6_K);  // tied: the output's rule
  EXPECT_EQ(q4km.at("blk.3.attn_q.weight"), GgmlType::Q4_K);
  EXPECT_EQ(q4km.at("blk.3.attn_norm.weight"), GgmlType::F32);
  auto q3km = plan_types(t, info, "Q3_K_M");
  EXPECT_EQ(layer_types(q3km, 4, "attn_v.weight"), "Q5_K Q5_K Q4_K Q4_K");
  EXPECT_EQ(layer_types(q3km, 3, "ffn_down.weight"), "Q5_K Q4_K Q4_K");
  EXPECT_EQ(q3km.at("blk.5.attn_output.weight"), GgmlType::Q4_K);
  EXPECT_EQ(q3km.at("blk.5.ffn_up.weight"), GgmlType::Q3_K);
  auto q4ks = plan_types(t, info, "Q4_K_S");
  EXPECT_EQ(layer_types(q4ks, 6, "attn_v.weight"), "Q5_K Q5_K Q5_K Q5_K Q4_K Q4_K");
  EXPECT_EQ(layer_types(q4ks, 3, "ffn_down.weight"), "Q5_K Q5_K Q4_K");
  auto q2k = plan_types(t, info, "Q2_K");
  EXPECT_EQ(q2k.at("blk.9.attn_v.weight"), GgmlType::Q4_K);  // GQA >= 4
  EXPECT_EQ(q2k.at("blk.9.ffn_down.weight"), GgmlType::Q3_K);
  EXPECT_EQ(q2k.at("blk.9.attn_output.weight"), GgmlType::Q3_K);
  EXPECT_EQ(q2k.at("blk.9.ffn_gate.weight"), GgmlType::Q2_K);
  auto iq4xs = plan_types(t, info, "iq4_xs");
  EXPECT_EQ(iq4xs.at("blk.9.attn_v.weight"), GgmlType::Q5_K);  // GQA >= 4
  EXPECT_EQ(layer_types(iq4xs, 3, "ffn_down.weight"), "Q5_K Q5_K IQ4_XS");
  auto q8 = plan_types(t, info, "Q8_0");
  EXPECT_EQ(q8.at("token_embd.weight"), GgmlType::Q8_0);  // an output in Q8_0 stays Q8_0
}

TEST(QuantizeModel, OrderIsByLayerThenName) {
  const QuantModelInfo info{.arch = "qwen2", .n_layer = 12, .n_head = 4, .n_head_kv = 1};
  const auto t = model_tensors(12, 256, 64, 512, /*tied=*/false);
  const auto plan = plan_quantization(t, info, parse_quant_mix("Q4_0"));
  ASSERT_EQ(plan.size(), t.size());
  std::vector<std::string> names;
  for (const TensorPlan& p : plan) names.push_back(t[p.input].name);
  EXPECT_EQ(names[0], "output.weight");
  EXPECT_EQ(names[1], "output_norm.weight");
  EXPECT_EQ(names[2], "token_embd.weight");
  EXPECT_EQ(names[3], "blk.0.attn_k.weight");
  EXPECT_EQ(names[3 + 9 * 9], "blk.9.attn_k.weight");
  EXPECT_EQ(names[3 + 9 * 10], "blk.10.attn_k.weight");  // numeric, not "blk.10" < "blk.2"
  EXPECT_EQ(names.back(), "blk.11.ffn_up.weight");
}

TEST(QuantizeModel, SeventyBAttnVGetsQ5K) {
  // llama with 80 layers and GQA is llama.cpp's "70B": attn_v Q3_K/Q4_K become Q5_K.
  const auto t = model_tensors(80, 256, 64, 512, false);
  const QuantModelInfo gqa{.arch = "llama", .n_layer = 80, .n_head = 4, .n_head_kv = 1};
  const QuantModelInfo mha{.arch = "llama", .n_layer = 80, .n_head = 4, .n_head_kv = 4};
  EXPECT_EQ(plan_types(t, gqa, "Q4_K_S").at("blk.40.attn_v.weight"), GgmlType::Q5_K);
  EXPECT_EQ(plan_types(t, mha, "Q4_K_S").at("blk.40.attn_v.weight"), GgmlType::Q4_K);
  EXPECT_EQ(plan_types(t, gqa, "Q3_K_S").at("blk.40.attn_v.weight"), GgmlType::Q5_K);
  const QuantModelInfo qwen{.arch = "qwen2", .n_layer = 80, .n_head = 4, .n_head_kv = 4};
  EXPECT_EQ(plan_types(t, qwen, "Q4_K_S").at("blk.40.attn_v.weight"), GgmlType::Q5_K);
}

TEST(QuantizeModel, FallbackForRowsThatDoNotFit) {
  const QuantModelInfo info{.arch = "llama", .n_layer = 2, .n_head = 4, .n_head_kv = 2};
  auto t = model_tensors(2, 384, 192, 172, false);  // 384: not a multiple of 256; 172: not of 32
  t.push_back({"blk.0.extra.weight", {256, 1}, GgmlType::F16});  // 1-D for ggml (trailing 1)
  auto q4km = plan_types(t, info, "Q4_K_M");
  EXPECT_EQ(q4km.at("blk.0.attn_q.weight"), GgmlType::Q5_0);     // Q4_K -> Q5_0
  EXPECT_EQ(q4km.at("blk.1.attn_v.weight"), GgmlType::Q8_0);     // Q6_K -> Q8_0
  EXPECT_EQ(q4km.at("blk.0.ffn_down.weight"), GgmlType::F16);    // 172: not even Q5_0 fits
  EXPECT_EQ(q4km.at("output.weight"), GgmlType::Q8_0);           // the output's own rule
  EXPECT_EQ(q4km.at("token_embd.weight"), GgmlType::Q5_0);       // untied: an ordinary matrix
  EXPECT_EQ(q4km.at("blk.0.extra.weight"), GgmlType::F16);       // kept
  EXPECT_EQ(plan_types(t, info, "Q5_K_S").at("blk.0.attn_q.weight"), GgmlType::Q5_1);
  EXPECT_EQ(plan_types(t, info, "Q2_K").at("blk.0.attn_q.weight"), GgmlType::Q4_0);
  EXPECT_EQ(plan_types(t, info, "IQ4_XS").at("blk.0.attn_q.weight"), GgmlType::IQ4_NL);
  EXPECT_EQ(plan_types(t, info, "Q4_1").at("blk.0.ffn_down.weight"), GgmlType::F16);
}

TEST(QuantizeModel, NamesAndMetadata) {
  EXPECT_EQ(find_quant_mix("iq4_xs")->ftype, 30u);
  EXPECT_EQ(find_quant_mix("Q4_K")->ftype, 15u);  // llama-quantize's alias of Q4_K_M
  EXPECT_EQ(find_quant_mix("q8_0")->ftype, 7u);
  EXPECT_EQ(find_quant_mix("Q4_K_X"), nullptr);
  EXPECT_THROW(parse_quant_mix("f16"), InvalidArgument);
  EXPECT_EQ(parse_weight_format("BF16").plain, GgmlType::BF16);
  EXPECT_EQ(parse_weight_format("q5_k_s").quant->ftype, 16u);
  EXPECT_THROW(parse_weight_format("q4"), InvalidArgument);

  // Metadata kept in order; the quantization version and file type re-set at the end; split keys gone.
  const std::vector<std::pair<std::string, GgufValue>> meta = {
      {"general.architecture", {std::string("llama")}},
      {"general.file_type", {uint32_t(1)}},
      {"llama.block_count", {uint32_t(1)}},
      {"general.quantization_version", {uint32_t(2)}},
      {"llama.attention.head_count", {uint32_t(2)}},
      {"split.count", {uint16_t(1)}},
      {"zz.custom", {std::string("kept")}},
  };
  std::vector<float> w(64 * 32, 0.25f);
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(w.data()), w.size() * 4);
  const std::vector<GgufTensorData> tensors = {{.name = "blk.0.attn_q.weight", .ne = {64, 32}, .type = GgmlType::F32, .data = bytes}};
  const QuantizedModel q = quantize_model(meta, tensors, parse_quant_mix("Q5_0"), "test");
  std::vector<std::string> keys;
  for (const auto& kv : q.metadata) keys.push_back(kv.first);
  EXPECT_EQ(keys, (std::vector<std::string>{"general.architecture", "llama.block_count", "llama.attention.head_count",
                                            "zz.custom", "general.quantization_version", "general.file_type"}));
  EXPECT_TRUE(q.metadata.back().second == GgufValue{uint32_t(8)});
  ASSERT_EQ(q.tensors.size(), 1u);
  EXPECT_EQ(q.tensors[0].type, GgmlType::Q5_0);

  auto other = meta;
  other[0].second = GgufValue{std::string("gemma")};
  EXPECT_THROW(quantize_model(other, tensors, parse_quant_mix("Q5_0"), "test"), FormatError);
}

// ---------------------------------------------------------------------------------------------
// ponder init --dtype and ponder export --dtype with llama-quantize's names.

TEST(QuantizeInit, Q4_0IsTheF32ModelQuantized) {
  PONDER_REQUIRE_SHARED("models/stories260K.gguf");
  const std::string vocab = shared_path("models/stories260K.gguf");
  const std::string q = temp_path("init-q4_0.gguf"), f = temp_path("init-f32.gguf"), fq = temp_path("init-f32-q4_0.gguf");
  const std::string common = " --preset qwen2-tiny --seed 9 --vocab " + vocab + " -o ";
  ASSERT_EQ(run_cli("init --dtype q4_0" + common + q).exit_code, 0);
  ASSERT_EQ(run_cli("init --dtype f32" + common + f).exit_code, 0);
  ASSERT_EQ(run_cli("quantize " + f + " " + fq + " Q4_0").exit_code, 0);
  EXPECT_TRUE(slurp(q) == slurp(fq));
  // It loads and runs in ponder (Q4_0 matrices, the tied embedding in Q8_0).
  const auto m = load_model(q);
  EXPECT_EQ(m->file.get_int("general.file_type"), 2);
  EXPECT_EQ(m->file.get_tensor("token_embd.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(m->file.get_tensor("blk.1.ffn_down.weight").type, GgmlType::Q4_0);
  KvPool pool(m->config.n_layer, m->config.kv_dim(), 16, 4);
  KvSeq seq;
  ForwardState st;
  std::vector<float> logits;
  const std::vector<int32_t> tokens = {1, 2, 3};
  BatchItem item{.seq = &seq, .tokens = tokens};
  forward(*m, pool, {&item, 1}, st, logits);
  ASSERT_EQ(logits.size(), size_t(m->config.n_vocab));
  for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  for (const std::string& p : {q, f, fq}) std::filesystem::remove(p);
}

TEST(QuantizeExport, Q4_K_MIsTheF32ExportQuantized) {
  TrainConfig c{.dim = 256, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 512, .ctx = 64, .tied = false};
  c.vocab = char_tokenizer().n_vocab();
  TrainModel m(c);
  init_params(m, 11);
  Checkpoint ck{.kind = "sft", .config = c, .params = m.params, .adam = {}, .step = 3, .run_options = "{}", .extra = {},
                .tokenizer = gguf_metadata_bytes(char_vocab_metadata())};
  ck.adam.m.assign(m.params.size(), 0.f);
  ck.adam.v.assign(m.params.size(), 0.f);
  const std::string ck_path = temp_path("export-ck.bin"), q = temp_path("export-q4_k_m.gguf"),
                    f = temp_path("export-f32.gguf"), fq = temp_path("export-f32-q4_k_m.gguf");
  write_checkpoint(ck_path, ck);
  const auto rq = run_cli("export --checkpoint " + ck_path + " --dtype q4_k_m -o " + q);
  ASSERT_EQ(rq.exit_code, 0) << rq.err;
  ASSERT_EQ(run_cli("export --checkpoint " + ck_path + " --dtype f32 -o " + f).exit_code, 0);
  ASSERT_EQ(run_cli("quantize " + f + " " + fq + " q4_k_m").exit_code, 0);
  EXPECT_TRUE(slurp(q) == slurp(fq));
  const GgufFile g = read_gguf(q);
  EXPECT_EQ(g.get_int("general.file_type"), 15);
  EXPECT_EQ(g.get_tensor("output.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(g.get_tensor("token_embd.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(g.get_tensor("blk.0.attn_v.weight").type, GgmlType::Q4_K);
  EXPECT_EQ(g.get_tensor("blk.1.ffn_down.weight").type, GgmlType::Q6_K);
  for (const std::string& p : {ck_path, q, f, fq}) std::filesystem::remove(p);
}

}  // namespace
}  // namespace ponder
