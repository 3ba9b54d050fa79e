#include "train/lora.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "model/arch.h"
#include "model/model.h"

namespace ponder {

namespace {

constexpr std::string_view kNames[kLoraTargets] = {"q", "k", "v", "o", "gate", "up", "down"};
static_assert(tensor_name::block_matrices.size() == kLoraTargets, "one GGUF matrix per LoRA target, in LoraTarget order");

}  // namespace

bool LoraConfig::has(LoraTarget t) const { return std::find(targets.begin(), targets.end(), t) != targets.end(); }

void LoraConfig::validate(const TrainConfig& model) const {
  if (rank < 1) throw InvalidArgument("--lora-rank must be >= 1, got " + std::to_string(rank));
  if (!(alpha > 0) || !std::isfinite(alpha))
    throw InvalidArgument("--lora-alpha must be a positive number, got " + std::to_string(alpha));
  if (targets.empty()) throw InvalidArgument("--lora-targets: no target matrices");
  for (LoraTarget t : targets) {
    const auto [in, out] = lora_shape(model, t);
    if (rank > std::min(in, out))
      throw InvalidArgument("--lora-rank " + std::to_string(rank) + " exceeds the smaller side of the " +
                            std::string(kNames[int(t)]) + " matrices (" + std::to_string(out) + " x " +
                            std::to_string(in) + ")");
  }
}

std::vector<LoraTarget> parse_lora_targets(std::string_view text) {
  std::vector<LoraTarget> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string_view name = text.substr(start, comma - start);
    start = comma + 1;
    const auto* it = std::find(std::begin(kNames), std::end(kNames), name);
    if (it == std::end(kNames))
      throw InvalidArgument("--lora-targets: unknown matrix '" + std::string(name) + "', expected a comma-separated "
                            "subset of q,k,v,o,gate,up,down");
    const LoraTarget t = LoraTarget(it - std::begin(kNames));
    if (std::find(out.begin(), out.end(), t) != out.end())
      throw InvalidArgument("--lora-targets: '" + std::string(name) + "' is given twice");
    out.push_back(t);
  }
  return out;
}

std::string lora_targets_text(const std::vector<LoraTarget>& targets) {
  std::string s;
  for (LoraTarget t : targets) {
    if (!s.empty()) s += ',';
    s += kNames[int(t)];
  }
  return s;
}

nlohmann::json lora_run_options(const LoraConfig& c) {
  if (!c.enabled()) return nlohmann::json::object();
  return {{"lora_rank", c.rank}, {"lora_alpha", c.alpha}, {"lora_targets", lora_targets_text(c.targets)}};
}

std::string lora_base_name(int layer, LoraTarget t) { return tensor_name::block(layer, tensor_name::block_matrices[size_t(t)]); }

std::pair<int64_t, int64_t> lora_shape(const TrainConfig& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::Q: return {c.dim, c.q_dim()};
    case LoraTarget::K:
    case LoraTarget::V: return {c.dim, c.kv_dim()};
    case LoraTarget::O: return {c.q_dim(), c.dim};
    case LoraTarget::Gate:
    case LoraTarget::Up: return {c.dim, c.ffn};
    case LoraTarget::Down: return {c.ffn, c.dim};
  }
  return {0, 0};
}

LoraAdapters::LoraAdapters(const TrainConfig& model, const LoraConfig& c)
    : config(c), a_offset_(size_t(model.n_layers) * kLoraTargets, -1), b_offset_(a_offset_) {
  c.validate(model);
  for (int l = 0; l < model.n_layers; ++l)
    for (int ti = 0; ti < kLoraTargets; ++ti) {
      const LoraTarget t = LoraTarget(ti);
      if (!c.has(t)) continue;
      const auto [in, out] = lora_shape(model, t);
      const std::string base = lora_base_name(l, t);
      for (const bool is_a : {true, false}) {
        const std::vector<int64_t> shape = is_a ? std::vector<int64_t>{c.rank, in} : std::vector<int64_t>{out, c.rank};
        const size_t n = size_t(shape[0] * shape[1]);
        (is_a ? a_offset_ : b_offset_)[size_t(l * kLoraTargets + ti)] = int64_t(layout.total);
        // Weight decay applies, as the Hugging Face Trainer applies it to every matrix it trains.
        layout.tensors.push_back({.name = base + (is_a ? ".lora_a" : ".lora_b"), .shape = shape,
                                  .offset = layout.total, .size = n, .decay = true});
        layout.total += n;
      }
    }
  params.assign(layout.total, 0.0f);
}

float* LoraAdapters::a(float* base, int layer, LoraTarget t) const {
  const int64_t off = a_offset_[size_t(layer * kLoraTargets + int(t))];
  return off < 0 ? nullptr : base + off;
}

float* LoraAdapters::b(float* base, int layer, LoraTarget t) const {
  const int64_t off = b_offset_[size_t(layer * kLoraTargets + int(t))];
  return off < 0 ? nullptr : base + off;
}

void init_lora(LoraAdapters& lora, uint64_t seed) {
  Rng rng(seed);
  std::fill(lora.params.begin(), lora.params.end(), 0.0f);
  for (const ParamTensor& t : lora.layout.tensors) {
    if (!t.name.ends_with(".lora_a")) continue;
    const float bound = 1.0f / std::sqrt(float(t.shape[1]));
    for (size_t i = 0; i < t.size; ++i) lora.params[t.offset + i] = bound * float(2.0 * rng.uniform() - 1.0);
  }
}

void merge_lora(TrainModel& base, const LoraAdapters& lora) {
  const TrainConfig& c = base.config;
  if (base.frozen) throw InvalidArgument("merge_lora: the base's matrices are frozen in its file; thaw it first");
  const int r = lora.config.rank;
  for (int l = 0; l < c.n_layers; ++l)
    for (int ti = 0; ti < kLoraTargets; ++ti) {
      const LoraTarget t = LoraTarget(ti);
      const float* A = lora.a(l, t);
      if (!A) continue;
      const auto [in, out] = lora_shape(c, t);
      float* W = base.params.data() + base.layout.get(lora_base_name(l, t)).offset;
      // W (out, in) += s B (out, r) A (r, in)
      sgemm(false, false, out, in, r, lora.config.scale(), lora.b(l, t), r, A, in, 1.0f, W, in);
    }
}

TrainModel merged_model(const TrainModel& base, const LoraAdapters& lora) {
  TrainModel m = thaw(base);
  merge_lora(m, lora);
  return m;
}

void attach_lora(Model& engine, const LoraAdapters& lora) {
  if (int(engine.weights.layers.size()) != lora.n_layers())
    throw InvalidArgument("attach_lora: adapters for " + std::to_string(lora.n_layers()) + " layers, the model has " +
                          std::to_string(engine.weights.layers.size()));
  for (int l = 0; l < lora.n_layers(); ++l) {
    LayerWeights& lw = engine.weights.layers[size_t(l)];
    const WeightView* views[kLoraTargets] = {&lw.attn_q, &lw.attn_k, &lw.attn_v, &lw.attn_output,
                                             &lw.ffn_gate, &lw.ffn_up, &lw.ffn_down};
    for (int ti = 0; ti < kLoraTargets; ++ti) {
      const LoraTarget t = LoraTarget(ti);
      LoraDelta& d = lw.lora[size_t(ti)];
      d = {};
      const float* A = lora.a(l, t);
      if (!A) continue;
      const std::vector<int64_t>& shape = lora.layout.get(lora_base_name(l, t) + ".lora_a").shape;  // (r, in)
      const int64_t out = int64_t(lora.layout.get(lora_base_name(l, t) + ".lora_b").shape[0]);
      if (shape[1] != views[ti]->n_cols || out != views[ti]->n_rows)
        throw InvalidArgument("attach_lora: " + lora_base_name(l, t) + " is " + std::to_string(views[ti]->n_rows) + " x " +
                              std::to_string(views[ti]->n_cols) + " in the model, the adapter is for " +
                              std::to_string(out) + " x " + std::to_string(shape[1]));
      d = {.a = A, .b = lora.b(l, t), .rank = lora.config.rank, .scale = lora.config.scale()};
    }
  }
}

void export_lora_gguf(const LoraAdapters& lora, const TrainConfig& base, const std::string& path,
                      const std::string& name) {
  const std::vector<std::pair<std::string, GgufValue>> meta = {
      {"general.architecture", {base.arch}},
      {"general.type", {std::string("adapter")}},
      {"general.name", {name}},
      {"adapter.type", {std::string("lora")}},
      {"adapter.lora.alpha", {lora.config.alpha}},
  };
  std::vector<GgufTensorData> tensors;
  for (const ParamTensor& t : lora.layout.tensors) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(lora.params.data() + t.offset);
    // GGUF: ne[0] is the row length (A: in, B: r), as for the model's own matrices.
    tensors.push_back({.name = t.name, .ne = {t.shape[1], t.shape[0]}, .type = GgmlType::F32,
                       .data = {bytes, t.size * sizeof(float)}});
  }
  write_gguf(path, meta, tensors);
}

}  // namespace ponder
