#include "train/params.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "model/arch.h"

namespace ponder {

ParamLayout ParamLayout::for_config(const TrainConfig& c, bool without_matrices) {
  c.validate();
  ParamLayout p;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    if (without_matrices && shape.size() == 2) return;
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    p.tensors.push_back({.name = name, .shape = shape, .offset = p.total, .size = n, .decay = shape.size() == 2});
    p.total += n;
  };
  add(tensor_name::token_embd, {c.vocab, c.dim});
  for (int l = 0; l < c.n_layers; ++l) {
    auto n = [&](const char* s) { return tensor_name::block(l, s); };
    add(n("attn_norm.weight"), {c.dim});
    add(n("attn_q.weight"), {c.q_dim(), c.dim});
    add(n("attn_k.weight"), {c.kv_dim(), c.dim});
    add(n("attn_v.weight"), {c.kv_dim(), c.dim});
    if (c.qkv_bias()) {
      add(n("attn_q.bias"), {c.q_dim()});
      add(n("attn_k.bias"), {c.kv_dim()});
      add(n("attn_v.bias"), {c.kv_dim()});
    }
    add(n("attn_output.weight"), {c.dim, c.q_dim()});
    add(n("ffn_norm.weight"), {c.dim});
    add(n("ffn_gate.weight"), {c.ffn, c.dim});
    add(n("ffn_up.weight"), {c.ffn, c.dim});
    add(n("ffn_down.weight"), {c.dim, c.ffn});
  }
  add(tensor_name::output_norm, {c.dim});
  if (!c.tied) add(tensor_name::output, {c.vocab, c.dim});
  return p;
}

const ParamTensor& ParamLayout::get(const std::string& name) const {
  for (const ParamTensor& t : tensors)
    if (t.name == name) return t;
  throw InvalidArgument("no parameter named '" + name + "'");
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  for (const ParamTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

ParamView view_params(const TrainConfig& c, const ParamLayout& layout, float* base) {
  auto at = [&](const std::string& name) { return base + layout.get(name).offset; };
  auto matrix = [&](const std::string& name) {  // null when frozen outside the layout
    const ParamTensor* t = layout.find(name);
    return t ? base + t->offset : nullptr;
  };
  ParamView v;
  v.token_embd = matrix(tensor_name::token_embd);
  const bool bias = c.qkv_bias();
  for (int l = 0; l < c.n_layers; ++l) {
    auto n = [&](const char* s) { return at(tensor_name::block(l, s)); };
    auto w = [&](const char* s) { return matrix(tensor_name::block(l, s)); };
    auto b = [&](const char* s) { return bias ? n(s) : nullptr; };
    v.layers.push_back({.attn_norm = n("attn_norm.weight"), .wq = w("attn_q.weight"), .wk = w("attn_k.weight"),
                        .wv = w("attn_v.weight"), .bq = b("attn_q.bias"), .bk = b("attn_k.bias"),
                        .bv = b("attn_v.bias"), .wo = w("attn_output.weight"), .ffn_norm = n("ffn_norm.weight"),
                        .w_gate = w("ffn_gate.weight"), .w_up = w("ffn_up.weight"), .w_down = w("ffn_down.weight")});
  }
  v.output_norm = at(tensor_name::output_norm);
  v.output = c.tied ? v.token_embd : matrix(tensor_name::output);
  return v;
}

TrainModel::TrainModel(const TrainConfig& c, bool without_matrices)
    : config(c), layout(ParamLayout::for_config(c, without_matrices)), params(layout.total, 0.f) {}

int64_t FrozenMatrices::bytes() const {
  int64_t n = token_embd.n_rows * token_embd.row_bytes();
  if (output.data != token_embd.data) n += output.n_rows * output.row_bytes();
  for (const auto& layer : layers)
    for (const WeightView& w : layer) n += w.n_rows * w.row_bytes();
  return n;
}

namespace {

// A frozen matrix stored as f32 (and float-aligned, as GGUF's alignment guarantees): read in place.
const float* stored_f32(const WeightView& w) {
  const bool aligned = reinterpret_cast<uintptr_t>(w.data) % alignof(float) == 0;
  return w.type == GgmlType::F32 && aligned ? reinterpret_cast<const float*>(w.data) : nullptr;
}

}  // namespace

const float* block_matrix(const TrainModel& m, const float* param, int l, int which, std::vector<float>& scratch) {
  if (param) return param;
  if (!m.frozen) throw InvalidArgument("block_matrix: layer " + std::to_string(l) + " matrix " + std::to_string(which) + " is in neither params nor a frozen base");
  const WeightView& w = m.frozen->layers[size_t(l)][size_t(which)];
  if (const float* f = stored_f32(w)) return f;
  scratch.resize(size_t(w.n_rows * w.n_cols));
  float* out = scratch.data();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < w.n_rows; ++r) dequantize_row(out + r * w.n_cols, w, r);
  return out;
}

const float* head_rows(const TrainModel& m, const float* param, int64_t v0, int64_t n, std::vector<float>& scratch) {
  const int64_t C = m.config.dim;
  if (param) return param + v0 * C;
  if (!m.frozen) throw InvalidArgument("head_rows: the LM head is in neither params nor a frozen base");
  const WeightView& w = m.frozen->output;
  if (v0 < 0 || n < 0 || v0 + n > w.n_rows) throw InvalidArgument("head_rows: rows out of range");
  if (const float* f = stored_f32(w)) return f + v0 * C;
  scratch.resize(size_t(n * C));
  float* out = scratch.data();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < n; ++r) dequantize_row(out + r * C, w, v0 + r);
  return out;
}

void head_row(const TrainModel& m, const float* param, int64_t v, float* out) {
  const int64_t C = m.config.dim;
  if (param) {
    std::copy_n(param + v * C, C, out);
    return;
  }
  if (!m.frozen) throw InvalidArgument("head_row: the LM head is in neither params nor a frozen base");
  const WeightView& w = m.frozen->output;
  if (v < 0 || v >= w.n_rows) throw InvalidArgument("head_row: row out of range");
  dequantize_row(out, w, v);
}

TrainModel thaw(const TrainModel& m) {
  if (!m.frozen) return m;
  TrainModel full(m.config);
  for (const ParamTensor& t : m.layout.tensors)
    std::copy_n(m.params.data() + t.offset, t.size, full.params.data() + full.layout.get(t.name).offset);
  auto dequantize = [&](const WeightView& w, const std::string& name) {
    float* out = full.params.data() + full.layout.get(name).offset;
    for (int64_t r = 0; r < w.n_rows; ++r) dequantize_row(out + r * w.n_cols, w, r);
  };
  dequantize(m.frozen->token_embd, tensor_name::token_embd);
  if (!m.config.tied) dequantize(m.frozen->output, tensor_name::output);
  std::vector<float> scratch;
  for (int l = 0; l < m.config.n_layers; ++l)
    for (size_t k = 0; k < tensor_name::block_matrices.size(); ++k) {
      const ParamTensor& t = full.layout.get(tensor_name::block(l, tensor_name::block_matrices[k]));
      const float* w = block_matrix(m, nullptr, l, int(k), scratch);  // scratch, or the file's f32 bytes
      std::copy_n(w, t.size, full.params.data() + t.offset);
    }
  return full;
}

void init_params(TrainModel& m, uint64_t seed) {
  Rng rng(seed);
  const float proj_std = 0.02f / std::sqrt(2.0f * float(m.config.n_layers));
  for (const ParamTensor& t : m.layout.tensors) {
    float* p = m.params.data() + t.offset;
    if (t.shape.size() == 1) {
      const bool bias = t.name.ends_with(".bias");
      std::fill(p, p + t.size, bias ? 0.0f : 1.0f);
      continue;
    }
    const bool proj = t.name.find("attn_output") != std::string::npos || t.name.find("ffn_down") != std::string::npos;
    const float std = proj ? proj_std : 0.02f;
    for (size_t i = 0; i < t.size; ++i) p[i] = std * float(rng.normal());
  }
}

}  // namespace ponder
