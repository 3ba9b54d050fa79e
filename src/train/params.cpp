#include "train/params.h"

#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "model/arch.h"

namespace ponder {

ParamLayout ParamLayout::for_config(const TrainConfig& c) {
  c.validate();
  ParamLayout p;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
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

ParamView view_params(const TrainConfig& c, const ParamLayout& layout, float* base) {
  auto at = [&](const std::string& name) { return base + layout.get(name).offset; };
  ParamView v;
  v.token_embd = at(tensor_name::token_embd);
  const bool bias = c.qkv_bias();
  for (int l = 0; l < c.n_layers; ++l) {
    auto n = [&](const char* s) { return at(tensor_name::block(l, s)); };
    auto b = [&](const char* s) { return bias ? n(s) : nullptr; };
    v.layers.push_back({.attn_norm = n("attn_norm.weight"), .wq = n("attn_q.weight"), .wk = n("attn_k.weight"),
                        .wv = n("attn_v.weight"), .bq = b("attn_q.bias"), .bk = b("attn_k.bias"),
                        .bv = b("attn_v.bias"), .wo = n("attn_output.weight"), .ffn_norm = n("ffn_norm.weight"),
                        .w_gate = n("ffn_gate.weight"), .w_up = n("ffn_up.weight"), .w_down = n("ffn_down.weight")});
  }
  v.output_norm = at(tensor_name::output_norm);
  v.output = c.tied ? v.token_embd : at(tensor_name::output);
  return v;
}

TrainModel::TrainModel(const TrainConfig& c) : config(c), layout(ParamLayout::for_config(c)), params(layout.total, 0.f) {}

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
