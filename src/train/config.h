#pragma once
// The models ponder trains: shapes, the architecture family, and the presets it trains from
// scratch.
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/rope.h"

namespace ponder {

struct TrainConfig {
  int vocab = 0;       // V
  int dim = 64;        // C
  int n_layers = 2;    // L
  int n_heads = 4;     // H
  int n_kv_heads = 2;  // Hkv
  int ffn = 192;       // F
  int ctx = 256;       // longest sequence trained on
  float rope_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied = true;    // the LM head is token_embd
  // general.architecture (model/arch.h): "llama" (adjacent-pair RoPE, no biases) or "qwen2"
  // (NeoX RoPE, Q/K/V biases).
  std::string arch = "llama";

  RopeStyle rope_style() const;
  bool qkv_bias() const;
  int head_dim() const { return dim / n_heads; }
  int q_dim() const { return n_heads * head_dim(); }
  int kv_dim() const { return n_kv_heads * head_dim(); }
  // Throws InvalidArgument for impossible shapes.
  void validate() const;
  bool operator==(const TrainConfig&) const = default;
};

struct TrainPreset {
  std::string name, description;
  TrainConfig config;  // vocab is set by the tokenizer
};
const std::vector<TrainPreset>& train_presets();
const TrainPreset& find_train_preset(const std::string& name);  // InvalidArgument listing the names

}  // namespace ponder
