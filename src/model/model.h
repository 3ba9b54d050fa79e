#pragma once
// A loaded model: config, weights (views into the mmap'd GGUF), tokenizer.
#include <array>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "formats/tokenizer.h"
#include "kernels/matmul.h"
#include "model/config.h"

namespace ponder {

// A LoRA adapter applied as the engine runs: y += scale (x A^T) B^T, with A (rank, in) and B
// (out, rank) in f32 owned elsewhere (the trainer's adapters, read in place while they train:
// train/lora.h attach_lora). A null a: no adapter.
struct LoraDelta {
  const float* a = nullptr;
  const float* b = nullptr;
  int rank = 0;
  float scale = 0;
};

struct LayerWeights {
  std::span<const float> attn_norm;  // (C)
  WeightView attn_q;                 // (H*D, C)
  WeightView attn_k;                 // (Hkv*D, C)
  WeightView attn_v;                 // (Hkv*D, C)
  std::span<const float> bq, bk, bv; // (H*D), (Hkv*D), (Hkv*D); empty without biases
  WeightView attn_output;            // (C, H*D)
  std::span<const float> bo;         // (C) or empty
  std::span<const float> ffn_norm;   // (C)
  WeightView ffn_gate;               // (F, C)
  WeightView ffn_up;                 // (F, C)
  WeightView ffn_down;               // (C, F)
  std::array<LoraDelta, 7> lora{};   // per matrix, in tensor_name::block_matrices order (q, k, v, o, gate, up, down)
};

struct ModelWeights {
  WeightView token_embd;              // (V, C)
  std::vector<LayerWeights> layers;   // (L)
  std::span<const float> output_norm; // (C)
  WeightView output;                  // (V, C); token_embd when tied
};

struct Model {
  std::string path;
  ModelConfig config;
  ModelWeights weights;
  Tokenizer tokenizer;
  GgufFile file;                               // owns the map the weights point into
  std::vector<std::vector<float>> owned;       // 1-D tensors converted to F32 when stored otherwise, LoRA A and B
  std::vector<std::vector<uint8_t>> repacked;  // Q8_0 matrices in the Q8x8 layout the kernels read
};

// Loads a GGUF model: config, every tensor checked against the shape the config implies,
// tokenizer. Throws FormatError naming the file and tensor.
std::unique_ptr<Model> load_model(const std::string& path);
// The same from a parsed file (used by tests and by the writer round trip).
std::unique_ptr<Model> load_model(GgufFile file);

}  // namespace ponder
