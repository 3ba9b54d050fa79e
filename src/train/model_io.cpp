#include "train/model_io.h"

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "formats/chat_template.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "model/config.h"

namespace ponder {

namespace {

// The GGUF of a model in memory: metadata, and the tensors with the bytes behind them.
struct ExportedModel {
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<std::vector<uint8_t>> storage;
  std::vector<GgufTensorData> tensors;
};

ExportedModel build_export(const TrainModel& model, const std::vector<std::pair<std::string, GgufValue>>& tok_meta,
                           GgmlType dtype, const std::string& name) {
  const std::optional<TrainModel> thawed = model.frozen ? std::optional<TrainModel>(thaw(model)) : std::nullopt;
  const TrainModel& m = thawed ? *thawed : model;
  const TrainConfig& c = m.config;
  const auto u32 = [](int v) { return GgufValue{uint32_t(v)}; };
  const std::string a = c.arch;  // the prefix of the architecture's keys
  std::vector<std::pair<std::string, GgufValue>> meta = {
      {"general.architecture", {a}},
      {"general.type", {std::string("model")}},
      {"general.name", {name}},
      {a + ".block_count", u32(c.n_layers)},
      {a + ".context_length", u32(c.ctx)},
      {a + ".embedding_length", u32(c.dim)},
      {a + ".feed_forward_length", u32(c.ffn)},
      {a + ".attention.head_count", u32(c.n_heads)},
      {a + ".attention.head_count_kv", u32(c.n_kv_heads)},
      {a + ".rope.freq_base", {c.rope_base}},
      {a + ".attention.layer_norm_rms_epsilon", {c.rms_eps}},
      {a + ".rope.dimension_count", u32(c.head_dim())},
      {a + ".vocab_size", u32(c.vocab)},
      {"general.file_type", u32(dtype == GgmlType::F32 ? 0 : dtype == GgmlType::F16 ? 1 : dtype == GgmlType::Q8_0 ? 7 : 32)},
      {"general.quantization_version", u32(2)},
  };
  meta.insert(meta.end(), tok_meta.begin(), tok_meta.end());
  const bool has_template = std::any_of(tok_meta.begin(), tok_meta.end(),
                                        [](const auto& kv) { return kv.first == "tokenizer.chat_template"; });
  if (!has_template) meta.emplace_back("tokenizer.chat_template", GgufValue{compact_chat_template()});
  ExportedModel e{.metadata = std::move(meta), .storage = {}, .tensors = {}};
  e.storage.reserve(m.layout.tensors.size());
  for (const ParamTensor& t : m.layout.tensors) {
    const float* p = m.params.data() + t.offset;
    const int64_t cols = t.shape.back(), rows = int64_t(t.size) / cols;
    // Matrices take the requested type when their rows fit its blocks; norms stay F32.
    const GgmlType type = t.shape.size() == 2 && cols % ggml_block_size(dtype) == 0 ? dtype : GgmlType::F32;
    std::vector<uint8_t>& bytes = e.storage.emplace_back(size_t(rows * ggml_row_size(type, cols)));
    for (int64_t r = 0; r < rows; ++r) convert_row(bytes.data() + r * ggml_row_size(type, cols), p + r * cols, cols, type);
    std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());  // GGUF: ne[0] is the input dimension
    e.tensors.push_back({.name = t.name, .ne = ne, .type = type, .data = bytes});
  }
  return e;
}

}  // namespace

void export_gguf(const TrainModel& m, const std::vector<std::pair<std::string, GgufValue>>& tok_meta,
                 const std::string& path, GgmlType dtype, const std::string& name) {
  const ExportedModel e = build_export(m, tok_meta, dtype, name);
  write_gguf(path, e.metadata, e.tensors);
}

void export_gguf(const TrainModel& m, const std::vector<std::pair<std::string, GgufValue>>& tok_meta,
                 const std::string& path, const QuantMix& quant, const std::string& name) {
  const ExportedModel e = build_export(m, tok_meta, GgmlType::F32, name);
  const QuantizedModel q = quantize_model(e.metadata, e.tensors, quant, path);
  write_gguf(path, q.metadata, q.tensors);
}

std::unique_ptr<Model> inference_model(const TrainModel& tm, const Tokenizer& tokenizer) {
  const TrainConfig& c = tm.config;
  if (tm.frozen)  // its matrices are the base file's: load_model lays them out for the kernels
    throw InvalidArgument("inference_model: the model's matrices are frozen in its GGUF file; load that file");
  auto m = std::make_unique<Model>();
  m->path = "<training model>";
  m->config = ModelConfig{.arch = &find_arch(c.arch, m->path), .n_embd = c.dim, .n_layer = c.n_layers, .n_head = c.n_heads,
                          .n_head_kv = c.n_kv_heads, .head_dim = c.head_dim(), .n_ff = c.ffn, .n_vocab = c.vocab,
                          .n_ctx_train = c.ctx, .n_rot = c.head_dim(), .rope_freq_base = c.rope_base,
                          .rms_eps = c.rms_eps, .tied_embeddings = c.tied};
  ParamView p = view_params(c, tm.layout, const_cast<float*>(tm.params.data()));
  auto mat = [](const float* data, int64_t rows, int64_t cols) {
    return WeightView{.type = GgmlType::F32, .data = reinterpret_cast<const uint8_t*>(data), .n_rows = rows, .n_cols = cols};
  };
  auto vec = [](const float* data, int64_t n) {
    return data ? std::span<const float>(data, size_t(n)) : std::span<const float>();
  };
  ModelWeights& w = m->weights;
  w.token_embd = mat(p.token_embd, c.vocab, c.dim);
  w.output = mat(p.output, c.vocab, c.dim);
  w.output_norm = vec(p.output_norm, c.dim);
  for (const LayerView& l : p.layers)
    w.layers.push_back({.attn_norm = vec(l.attn_norm, c.dim), .attn_q = mat(l.wq, c.q_dim(), c.dim),
                        .attn_k = mat(l.wk, c.kv_dim(), c.dim), .attn_v = mat(l.wv, c.kv_dim(), c.dim),
                        .bq = vec(l.bq, c.q_dim()), .bk = vec(l.bk, c.kv_dim()), .bv = vec(l.bv, c.kv_dim()),
                        .attn_output = mat(l.wo, c.dim, c.q_dim()), .bo = {},
                        .ffn_norm = vec(l.ffn_norm, c.dim), .ffn_gate = mat(l.w_gate, c.ffn, c.dim),
                        .ffn_up = mat(l.w_up, c.ffn, c.dim), .ffn_down = mat(l.w_down, c.dim, c.ffn)});
  m->tokenizer = tokenizer;
  return m;
}

std::vector<std::pair<std::string, GgufValue>> tokenizer_metadata(const GgufFile& f) {
  std::vector<std::pair<std::string, GgufValue>> out;
  for (const auto& [k, v] : f.metadata)
    if (k.rfind("tokenizer.", 0) == 0) out.emplace_back(k, v);
  return out;
}

TrainModel import_gguf(const GgufFile& f, bool freeze_matrices) {
  const ModelConfig mc = read_config(f);  // llama or qwen2, or a FormatError naming the architecture
  if (mc.n_rot != mc.head_dim)
    throw FormatError(f.path + ": " + std::string(mc.arch->name) + ".rope.dimension_count is " + std::to_string(mc.n_rot) +
                      ", the head dimension " + std::to_string(mc.head_dim) +
                      ": partial rotary embeddings are not supported in training");
  if (mc.head_dim * mc.n_head != mc.n_embd)
    throw FormatError(f.path + ": head dimension " + std::to_string(mc.head_dim) + " x " + std::to_string(mc.n_head) +
                      " heads is not the embedding length " + std::to_string(mc.n_embd) + "; training needs them equal");
  TrainConfig c{.vocab = mc.n_vocab, .dim = mc.n_embd, .n_layers = mc.n_layer, .n_heads = mc.n_head,
                .n_kv_heads = mc.n_head_kv, .ffn = mc.n_ff, .ctx = mc.n_ctx_train, .rope_base = mc.rope_freq_base,
                .rms_eps = mc.rms_eps, .tied = mc.tied_embeddings, .arch = std::string(mc.arch->name)};
  TrainModel m(c, freeze_matrices);
  const ParamLayout all = ParamLayout::for_config(c);  // every tensor's shape, frozen ones included
  // A tensor of the file with the shape the trainer expects, as a view of its stored rows.
  auto stored = [&](const std::string& name, const std::vector<int64_t>& shape) {
    const GgufTensor& g = f.get_tensor(name);
    const std::vector<int64_t> ne(shape.rbegin(), shape.rend());
    if (g.ne != ne) throw FormatError(f.path + ": tensor '" + name + "' has an unexpected shape");
    const int64_t cols = shape.back(), rows = shape.size() == 2 ? shape[0] : 1;
    const WeightView v{.type = g.type, .data = g.data, .n_rows = rows, .n_cols = cols};
    if (quant_type(g.type) && first_nonfinite_scale(g.type, g.data, rows * cols / ggml_block_size(g.type)) >= 0)
      throw FormatError(f.path + ": tensor '" + name + "' has an infinite or NaN block scale");
    return v;
  };
  for (const ParamTensor& t : m.layout.tensors) {
    const WeightView v = stored(t.name, t.shape);
    for (int64_t r = 0; r < v.n_rows; ++r) dequantize_row(m.params.data() + t.offset + r * v.n_cols, v, r);
  }
  if (freeze_matrices) {
    auto frozen = std::make_shared<FrozenMatrices>();
    frozen->map = f.map;
    frozen->token_embd = stored(tensor_name::token_embd, all.get(tensor_name::token_embd).shape);
    frozen->output = c.tied ? frozen->token_embd : stored(tensor_name::output, all.get(tensor_name::output).shape);
    for (int l = 0; l < c.n_layers; ++l) {
      auto& layer = frozen->layers.emplace_back();
      for (size_t k = 0; k < tensor_name::block_matrices.size(); ++k) {
        const std::string name = tensor_name::block(l, tensor_name::block_matrices[k]);
        layer[k] = stored(name, all.get(name).shape);
      }
    }
    m.frozen = std::move(frozen);
  }
  // Every tensor of the file must be one the trainer updates or holds frozen (an attention output
  // bias, say, would be dropped silently otherwise).
  for (const GgufTensor& g : f.tensors) {
    const bool known = all.find(g.name) != nullptr;
    if (!known && !(g.name == tensor_name::output && c.tied))
      throw FormatError(f.path + ": tensor '" + g.name + "' has no place in a trainable " + c.arch +
                        " model (training supports token_embd, attn_norm, attn_q/k/v (" +
                        (c.qkv_bias() ? "with biases" : "no biases") + "), attn_output, ffn_norm, ffn_gate/up/down, "
                        "output_norm, output)");
  }
  return m;
}

}  // namespace ponder
