#include "model/model.h"

#include "core/error.h"
#include "core/fp16.h"

namespace ponder {

namespace {

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

struct Loader {
  Model& m;

  const GgufTensor& tensor(const std::string& name, std::vector<int64_t> ne) {
    const GgufTensor& t = m.file.get_tensor(name);
    if (t.ne != ne)
      throw FormatError(m.path + ": tensor '" + name + "' has shape " + shape_str(t.ne) + ", expected " +
                        shape_str(ne));
    return t;
  }

  WeightView matrix(const std::string& name, int64_t n_out, int64_t n_in) {
    const GgufTensor& t = tensor(name, {n_in, n_out});
    const bool is_float = t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16;
    const QuantType* q = quant_type(t.type);
    if (!is_float && !q)
      throw FormatError(m.path + ": tensor '" + name + "' has type " + ggml_type_name(uint32_t(t.type)) +
                        ", which ponder reads but cannot compute with yet");
    if (q) {
      const int64_t n_blocks = n_out * (n_in / ggml_block_size(t.type));
      if (const int64_t b = first_nonfinite_scale(t.type, t.data, n_blocks); b >= 0)
        throw FormatError(m.path + ": tensor '" + name + "' (" + ggml_type_name(uint32_t(t.type)) + ") has an infinite or NaN scale in block " +
                          std::to_string(b % (n_in / ggml_block_size(t.type))) + " of row " +
                          std::to_string(b / (n_in / ggml_block_size(t.type))));
    }
    // llama.cpp repacks these types 8 rows at a time on x86 and sums them in that kernel's order.
    const bool x8 = q && has_x8_order(*q) && n_out % 8 == 0;
    return WeightView{.type = t.type, .data = t.data, .n_rows = n_out, .n_cols = n_in,
                      .order = x8 ? DotOrder::Interleaved8 : DotOrder::Row};
  }

  // 1-D tensors (norms, biases) are used as floats; other types are converted once here.
  std::span<const float> vector(const std::string& name, int64_t n) {
    const GgufTensor& t = tensor(name, {n});
    if (t.type == GgmlType::F32 && reinterpret_cast<uintptr_t>(t.data) % alignof(float) == 0)
      return {reinterpret_cast<const float*>(t.data), size_t(n)};
    std::vector<float>& out = m.owned.emplace_back(size_t(n));
    dequantize_row(out.data(), WeightView{.type = t.type, .data = t.data, .n_rows = 1, .n_cols = n}, 0);
    return out;
  }

  std::span<const float> optional_vector(const std::string& name, int64_t n) {
    return m.file.find_tensor(name) ? vector(name, n) : std::span<const float>{};
  }
};

}  // namespace

std::unique_ptr<Model> load_model(GgufFile file) {
  auto m = std::make_unique<Model>();
  m->path = file.path;
  m->file = std::move(file);
  m->config = read_config(m->file);
  const ModelConfig& c = m->config;
  Loader ld{*m};
  ModelWeights& w = m->weights;
  w.token_embd = ld.matrix(tensor_name::token_embd, c.n_vocab, c.n_embd);
  w.output_norm = ld.vector(tensor_name::output_norm, c.n_embd);
  w.output = c.tied_embeddings ? w.token_embd : ld.matrix(tensor_name::output, c.n_vocab, c.n_embd);
  for (int l = 0; l < c.n_layer; ++l) {
    auto name = [&](const char* suffix) { return tensor_name::block(l, suffix); };
    LayerWeights& lw = w.layers.emplace_back();
    lw.attn_norm = ld.vector(name("attn_norm.weight"), c.n_embd);
    lw.attn_q = ld.matrix(name("attn_q.weight"), c.q_dim(), c.n_embd);
    lw.attn_k = ld.matrix(name("attn_k.weight"), c.kv_dim(), c.n_embd);
    lw.attn_v = ld.matrix(name("attn_v.weight"), c.kv_dim(), c.n_embd);
    if (c.arch->qkv_bias) {
      lw.bq = ld.vector(name("attn_q.bias"), c.q_dim());
      lw.bk = ld.vector(name("attn_k.bias"), c.kv_dim());
      lw.bv = ld.vector(name("attn_v.bias"), c.kv_dim());
    } else {
      lw.bq = ld.optional_vector(name("attn_q.bias"), c.q_dim());
      lw.bk = ld.optional_vector(name("attn_k.bias"), c.kv_dim());
      lw.bv = ld.optional_vector(name("attn_v.bias"), c.kv_dim());
    }
    lw.attn_output = ld.matrix(name("attn_output.weight"), c.n_embd, c.q_dim());
    lw.bo = ld.optional_vector(name("attn_output.bias"), c.n_embd);
    lw.ffn_norm = ld.vector(name("ffn_norm.weight"), c.n_embd);
    lw.ffn_gate = ld.matrix(name("ffn_gate.weight"), c.n_ff, c.n_embd);
    lw.ffn_up = ld.matrix(name("ffn_up.weight"), c.n_ff, c.n_embd);
    lw.ffn_down = ld.matrix(name("ffn_down.weight"), c.n_embd, c.n_ff);
  }
  // Matrices are repacked once into the layouts the SIMD kernels read (Q8_0, Q4_0, Q5_0, Q4_K; see
  // repack_for_kernels); token_embd keeps its GGUF rows for the embedding lookup even when it is
  // also the (repacked) LM head.
  auto repack = [&](WeightView& v) {
    std::vector<uint8_t> bytes = repack_for_kernels(v);
    if (!bytes.empty()) m->repacked.push_back(std::move(bytes));
  };
  for (LayerWeights& lw : w.layers)
    for (WeightView* v : {&lw.attn_q, &lw.attn_k, &lw.attn_v, &lw.attn_output, &lw.ffn_gate, &lw.ffn_up, &lw.ffn_down})
      repack(*v);
  repack(w.output);
  m->tokenizer = Tokenizer::from_gguf(m->file);
  if (m->tokenizer.n_vocab() != c.n_vocab)
    throw FormatError(m->path + ": the tokenizer has " + std::to_string(m->tokenizer.n_vocab()) +
                      " tokens but token_embd.weight has " + std::to_string(c.n_vocab) + " rows");
  return m;
}

std::unique_ptr<Model> load_model(const std::string& path) { return load_model(read_gguf(path)); }

}  // namespace ponder
