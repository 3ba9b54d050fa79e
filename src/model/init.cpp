#include "model/init.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "formats/gguf.h"
#include "kernels/matmul.h"
#include "model/arch.h"

namespace ponder {

const std::vector<Preset>& model_presets() {
  static const std::vector<Preset> presets = {
      {"qwen2-0.5b", "Qwen2/Qwen2.5-0.5B shapes (the R1 1.5B distill's smaller sibling)",
       {.arch = "qwen2", .n_embd = 896, .n_layer = 24, .n_head = 14, .n_head_kv = 2, .n_ff = 4864, .n_ctx = 32768,
        .rope_freq_base = 1e6f, .rms_eps = 1e-6f, .tied_embeddings = true}},
      {"qwen2-1.5b", "Qwen2.5-1.5B shapes (DeepSeek-R1-Distill-Qwen-1.5B)",
       {.arch = "qwen2", .n_embd = 1536, .n_layer = 28, .n_head = 12, .n_head_kv = 2, .n_ff = 8960, .n_ctx = 131072,
        .rope_freq_base = 1e4f, .rms_eps = 1e-6f, .tied_embeddings = false}},
      {"qwen2-tiny", "the shapes of the tiny-qwen2 test model",
       {.arch = "qwen2", .n_embd = 64, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .n_ff = 128, .n_ctx = 4096,
        .rope_freq_base = 1e6f, .rms_eps = 1e-6f, .tied_embeddings = true}},
      {"llama-tiny", "stories260K's shapes",
       {.arch = "llama", .n_embd = 64, .n_layer = 5, .n_head = 8, .n_head_kv = 4, .n_ff = 172, .n_ctx = 2048,
        .rope_freq_base = 1e4f, .rms_eps = 1e-5f, .tied_embeddings = false}},
  };
  return presets;
}

const Preset& find_preset(const std::string& name) {
  std::string known;
  for (const Preset& p : model_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw InvalidArgument("unknown preset '" + name + "'; known presets: " + known);
}

namespace {

// llama.cpp's LLAMA_FTYPE numbers for general.file_type.
uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q8_0: return 7;
    case GgmlType::BF16: return 32;
    default: return 0;  // init writes only the types above (cmd_init checks --dtype)
  }
}

struct TensorBuilder {
  Rng rng;
  std::vector<std::vector<uint8_t>> storage;
  std::vector<GgufTensorData> tensors;

  void add(const std::string& name, std::vector<int64_t> ne, GgmlType type, float stddev, float mean = 0.f) {
    int64_t rows = 1;
    for (size_t i = 1; i < ne.size(); ++i) rows *= ne[i];
    const int64_t K = ne[0];
    std::vector<float> row(size_t(K), 0.f);
    std::vector<uint8_t>& bytes = storage.emplace_back(size_t(rows * ggml_row_size(type, K)));
    const int64_t row_bytes = ggml_row_size(type, K);
    for (int64_t r = 0; r < rows; ++r) {
      for (float& x : row) x = mean + stddev * float(rng.normal());
      convert_row(bytes.data() + r * row_bytes, row.data(), K, type);
    }
    tensors.push_back({.name = name, .ne = std::move(ne), .type = type, .data = bytes});
  }
};

GgufValue u32(uint32_t v) { return {v}; }
GgufValue f32(float v) { return {v}; }
GgufValue str(const std::string& s) { return {s}; }

}  // namespace

RandomModel build_random_model(const InitOptions& opt) {
  if (opt.quant) {  // the F32 model, then llama-quantize's per-tensor types (it falls back for odd shapes)
    InitOptions f32 = opt;
    f32.quant = nullptr;
    f32.dtype = GgmlType::F32;
    const RandomModel m = build_random_model(f32);
    QuantizedModel q = quantize_model(m.metadata, m.tensors, *opt.quant, "ponder init");
    return RandomModel{.metadata = std::move(q.metadata), .storage = std::move(q.storage), .tensors = std::move(q.tensors)};
  }
  const ModelShape& s = opt.shape;
  const ArchInfo& arch = find_arch(s.arch, "--arch");
  if (s.n_embd <= 0 || s.n_layer <= 0 || s.n_head <= 0 || s.n_head_kv <= 0 || s.n_ff <= 0)
    throw InvalidArgument("model dimensions must be positive");
  if (s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0)
    throw InvalidArgument("embedding " + std::to_string(s.n_embd) + " must be a multiple of heads " +
                          std::to_string(s.n_head) + ", and heads a multiple of KV heads " + std::to_string(s.n_head_kv));
  const int64_t block = ggml_block_size(opt.dtype);
  const int head_dim = s.n_embd / s.n_head;
  if (s.n_embd % block != 0 || s.n_ff % block != 0 || (s.n_head * head_dim) % block != 0)
    throw InvalidArgument(ggml_type_name(uint32_t(opt.dtype)) + " needs embedding and FFN sizes that are multiples of " +
                          std::to_string(block));
  if (opt.vocab_path.empty()) throw InvalidArgument("--vocab FILE is required: the GGUF whose tokenizer to copy");

  const GgufFile vocab = read_gguf(opt.vocab_path);
  const int64_t n_vocab = int64_t(vocab.get_array("tokenizer.ggml.tokens", GgufType::STRING).items.size());
  const std::string a = s.arch;

  std::vector<std::pair<std::string, GgufValue>> meta = {
      {"general.architecture", str(a)},
      {"general.type", str("model")},
      {"general.name", str(opt.name)},
      {a + ".block_count", u32(uint32_t(s.n_layer))},
      {a + ".context_length", u32(uint32_t(s.n_ctx))},
      {a + ".embedding_length", u32(uint32_t(s.n_embd))},
      {a + ".feed_forward_length", u32(uint32_t(s.n_ff))},
      {a + ".attention.head_count", u32(uint32_t(s.n_head))},
      {a + ".attention.head_count_kv", u32(uint32_t(s.n_head_kv))},
      {a + ".rope.freq_base", f32(s.rope_freq_base)},
      {a + ".attention.layer_norm_rms_epsilon", f32(s.rms_eps)},
      {"general.file_type", u32(file_type(opt.dtype))},
  };
  if (a == "llama") {
    meta.push_back({a + ".rope.dimension_count", u32(uint32_t(head_dim))});
    meta.push_back({a + ".vocab_size", u32(uint32_t(n_vocab))});
  }
  for (const auto& [k, v] : vocab.metadata)
    if (k.rfind("tokenizer.", 0) == 0) meta.emplace_back(k, v);
  meta.push_back({"general.quantization_version", u32(2)});

  // Tensors in the order llama.cpp's converter writes them; std 0.02 as in common initialisers,
  // norms around 1.
  TensorBuilder tb{Rng(opt.seed), {}, {}};
  tb.storage.reserve(size_t(4 + s.n_layer * 12));
  const int64_t C = s.n_embd, F = s.n_ff, qd = int64_t(s.n_head) * head_dim, kvd = int64_t(s.n_head_kv) * head_dim;
  tb.add(tensor_name::token_embd, {C, n_vocab}, opt.dtype, 0.02f);
  for (int l = 0; l < s.n_layer; ++l) {
    auto n = [&](const char* suffix) { return tensor_name::block(l, suffix); };
    tb.add(n("attn_norm.weight"), {C}, GgmlType::F32, 0.1f, 1.f);
    tb.add(n("attn_q.weight"), {C, qd}, opt.dtype, 0.02f);
    if (arch.qkv_bias) tb.add(n("attn_q.bias"), {qd}, GgmlType::F32, 0.02f);
    tb.add(n("attn_k.weight"), {C, kvd}, opt.dtype, 0.02f);
    if (arch.qkv_bias) tb.add(n("attn_k.bias"), {kvd}, GgmlType::F32, 0.02f);
    tb.add(n("attn_v.weight"), {C, kvd}, opt.dtype, 0.02f);
    if (arch.qkv_bias) tb.add(n("attn_v.bias"), {kvd}, GgmlType::F32, 0.02f);
    tb.add(n("attn_output.weight"), {qd, C}, opt.dtype, 0.02f);
    tb.add(n("ffn_norm.weight"), {C}, GgmlType::F32, 0.1f, 1.f);
    tb.add(n("ffn_gate.weight"), {C, F}, opt.dtype, 0.02f);
    tb.add(n("ffn_up.weight"), {C, F}, opt.dtype, 0.02f);
    tb.add(n("ffn_down.weight"), {F, C}, opt.dtype, 0.02f);
  }
  tb.add(tensor_name::output_norm, {C}, GgmlType::F32, 0.1f, 1.f);
  if (!s.tied_embeddings) tb.add(tensor_name::output, {C, n_vocab}, opt.dtype, 0.02f);
  return RandomModel{.metadata = std::move(meta), .storage = std::move(tb.storage), .tensors = std::move(tb.tensors)};
}

void write_random_model(const InitOptions& opt) {
  if (opt.output_path.empty()) throw InvalidArgument("an output path is required (-o FILE)");
  const RandomModel m = build_random_model(opt);
  write_gguf(opt.output_path, m.metadata, m.tensors);
}

}  // namespace ponder
