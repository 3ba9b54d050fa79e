#include "model/lora_apply.h"

#include <map>

#include "core/error.h"

namespace ponder {

void apply_lora(Model& model, const std::string& adapter_path, float scale) {
  const GgufFile f = read_gguf(adapter_path);
  const auto fail = [&](const std::string& what) { throw FormatError(adapter_path + ": " + what); };
  auto text = [&](const char* key) {
    const GgufValue* v = f.find(key);
    return v && std::holds_alternative<std::string>(v->v) ? std::get<std::string>(v->v) : std::string("(absent)");
  };
  if (text("general.type") != "adapter" || text("adapter.type") != "lora")
    fail("not a LoRA adapter (general.type '" + text("general.type") + "', adapter.type '" + text("adapter.type") +
         "'; expected 'adapter' and 'lora')");
  if (f.get_string("general.architecture") != model.config.arch->name)
    fail("an adapter for '" + f.get_string("general.architecture") + "', the model is '" +
         std::string(model.config.arch->name) + "'");
  const double alpha = f.get_float("adapter.lora.alpha");
  // The matrices an adapter may change, by GGUF name, with their adapter slots.
  std::map<std::string, std::pair<const WeightView*, LoraDelta*>> matrices;
  for (size_t l = 0; l < model.weights.layers.size(); ++l) {
    LayerWeights& w = model.weights.layers[l];
    // In tensor_name::block_matrices' order.
    const WeightView* views[] = {&w.attn_q, &w.attn_k, &w.attn_v, &w.attn_output, &w.ffn_gate, &w.ffn_up, &w.ffn_down};
    static_assert(std::size(views) == tensor_name::block_matrices.size());
    for (size_t k = 0; k < std::size(views); ++k)
      matrices[tensor_name::block(int(l), tensor_name::block_matrices[k])] = {views[k], &w.lora[k]};
  }
  for (const GgufTensor& a : f.tensors) {
    if (!a.name.ends_with(".lora_a")) {
      if (!a.name.ends_with(".lora_b")) fail("tensor '" + a.name + "' is neither a lora_a nor a lora_b");
      if (!f.find_tensor(a.name.substr(0, a.name.size() - 1) + "a")) fail("tensor '" + a.name + "' has no lora_a");
      continue;
    }
    const std::string base = a.name.substr(0, a.name.size() - 7);
    const GgufTensor* b = f.find_tensor(base + ".lora_b");
    if (!b) fail("tensor '" + a.name + "' has no lora_b");
    const auto it = matrices.find(base);
    if (it == matrices.end()) fail("tensor '" + a.name + "': the model has no matrix '" + base + "' to adapt");
    const WeightView& w = *it->second.first;
    LoraDelta& delta = *it->second.second;
    if (delta.a) fail("tensor '" + a.name + "': matrix '" + base + "' already has an adapter (one adapter at a time)");
    // A (r, in): ne {in, r}; B (out, r): ne {r, out}.
    if (a.type != GgmlType::F32 || b->type != GgmlType::F32) fail("tensor '" + a.name + "': adapters must be F32");
    if (a.ne.size() != 2 || b->ne.size() != 2 || a.ne[0] != w.n_cols || b->ne[1] != w.n_rows || a.ne[1] != b->ne[0] ||
        a.ne[1] < 1)
      fail("tensors '" + base + ".lora_a/b' have shapes that do not fit the model's " + std::to_string(w.n_rows) +
           " x " + std::to_string(w.n_cols) + " matrix");
    const int64_t r = a.ne[1], in = w.n_cols, out = w.n_rows;
    const auto* A = reinterpret_cast<const float*>(a.data);
    const auto* B = reinterpret_cast<const float*>(b->data);
    // (The inner buffers stay put when owned grows.)
    const float* a_copy = model.owned.emplace_back(A, A + r * in).data();
    const float* b_copy = model.owned.emplace_back(B, B + out * r).data();
    delta = {.a = a_copy, .b = b_copy, .rank = int(r), .scale = float(scale * alpha / double(r))};
  }
}

}  // namespace ponder
