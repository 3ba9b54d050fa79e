#pragma once
// Random-weight models with realistic shapes, written as GGUF files that llama.cpp also loads
// (the same tensor names, types, alignment and metadata keys as llama.cpp's converter writes).
// Benchmarks use them; the tokenizer is copied from another GGUF.
#include <cstdint>
#include <string>
#include <vector>

#include "core/ggml_type.h"
#include "formats/gguf.h"
#include "model/quantize_model.h"

namespace ponder {

struct ModelShape {
  std::string arch = "qwen2";  // llama | qwen2
  int n_embd = 64;
  int n_layer = 2;
  int n_head = 4;
  int n_head_kv = 2;
  int n_ff = 128;
  int n_ctx = 4096;
  float rope_freq_base = 1e6f;
  float rms_eps = 1e-6f;
  bool tied_embeddings = true;
};

struct Preset {
  std::string name;
  std::string description;
  ModelShape shape;
};
const std::vector<Preset>& model_presets();
// Throws InvalidArgument listing the known presets.
const Preset& find_preset(const std::string& name);

struct InitOptions {
  ModelShape shape;
  GgmlType dtype = GgmlType::F32;  // 2-D weights; norms and biases stay F32
  const QuantMix* quant = nullptr; // set: the F32 model quantized as llama-quantize would (dtype unused)
  uint64_t seed = 0;
  std::string vocab_path;          // GGUF whose tokenizer.* keys are copied
  std::string output_path;
  std::string name = "ponder-random";
};

// A model built in memory: metadata and tensors exactly as write_random_model writes them.
struct RandomModel {
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<std::vector<uint8_t>> storage;  // backs the tensors' bytes
  std::vector<GgufTensorData> tensors;
};
// Throws InvalidArgument / FormatError for impossible shapes or a bad vocab file.
RandomModel build_random_model(const InitOptions& opt);
// Builds the model and writes it as GGUF (atomically).
void write_random_model(const InitOptions& opt);

}  // namespace ponder
