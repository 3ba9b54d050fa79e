#include "train/config.h"

#include "core/error.h"
#include "model/arch.h"

namespace ponder {

void TrainConfig::validate() const {
  auto fail = [](const std::string& what) { throw InvalidArgument("model config: " + what); };
  if (vocab <= 0 || dim <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv_heads <= 0 || ffn <= 0 || ctx <= 0)
    fail("every dimension must be positive");
  if (dim % n_heads != 0) fail("dim " + std::to_string(dim) + " is not a multiple of n_heads " + std::to_string(n_heads));
  if (n_heads % n_kv_heads != 0)
    fail("n_heads " + std::to_string(n_heads) + " is not a multiple of n_kv_heads " + std::to_string(n_kv_heads));
  if (head_dim() % 2 != 0) fail("the head dimension must be even (rotary pairs)");
  try {
    find_arch(arch, "model config");
  } catch (const FormatError& e) {
    throw InvalidArgument(e.what());
  }
}

RopeStyle TrainConfig::rope_style() const { return find_arch(arch, "model config").rope_style; }
bool TrainConfig::qkv_bias() const { return find_arch(arch, "model config").qkv_bias; }

const std::vector<TrainPreset>& train_presets() {
  static const std::vector<TrainPreset> presets = {
      {"tiny", "dim 64, 2 layers, 4 heads, 2 KV heads, FFN 192 (~0.1M parameters, for tests)",
       {.dim = 64, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .ffn = 192, .ctx = 256}},
      {"small", "dim 128, 4 layers, 4 heads, 2 KV heads, FFN 384 (~0.7M parameters)",
       {.dim = 128, .n_layers = 4, .n_heads = 4, .n_kv_heads = 2, .ffn = 384, .ctx = 256}},
      {"5m", "dim 256, 6 layers, 8 heads, 4 KV heads, FFN 768 (~4.9M parameters)",
       {.dim = 256, .n_layers = 6, .n_heads = 8, .n_kv_heads = 4, .ffn = 768, .ctx = 256}},
  };
  return presets;
}

const TrainPreset& find_train_preset(const std::string& name) {
  std::string known;
  for (const TrainPreset& p : train_presets()) {
    if (p.name == name) return p;
    known += (known.empty() ? "" : ", ") + p.name;
  }
  throw InvalidArgument("unknown preset '" + name + "'; known presets: " + known);
}

}  // namespace ponder
