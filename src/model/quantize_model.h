#pragma once
// Quantizing a model as llama.cpp 0.5.0's `llama-quantize IN OUT TYPE` does without an importance
// matrix: the same type for every tensor (its per-tensor rules for the _S/_M/_L mixes, the
// output and token embedding, the fallback for rows that do not fit a type's blocks), the same
// tensor order, the same bytes (kernels/quantize.h) and the same metadata (general.file_type set
// to the LLAMA_FTYPE number, general.quantization_version = 2, everything else kept).
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/ggml_type.h"
#include "formats/gguf.h"

namespace ponder {

// One of llama-quantize's TYPE arguments: a file type (LLAMA_FTYPE) and its default tensor type.
struct QuantMix {
  const char* name;    // as llama-quantize prints it: "Q4_K_M"
  uint32_t ftype;      // llama.cpp's LLAMA_FTYPE number, written as general.file_type
  GgmlType base_type;  // the type most tensors get
};

// Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K IQ4_NL IQ4_XS,
// plus llama-quantize's aliases Q3_K, Q4_K, Q5_K (the _M mixes).
const std::vector<QuantMix>& quant_mixes();
// Case-insensitive; nullptr for an unknown name.
const QuantMix* find_quant_mix(const std::string& name);
// The same, throwing InvalidArgument that lists the valid names.
const QuantMix& parse_quant_mix(const std::string& name);
std::string quant_mix_names();  // "Q4_0, Q4_1, ..."

// What the per-tensor rules read of a model.
struct QuantModelInfo {
  std::string arch;   // llama | qwen2
  int n_layer = 0;    // {arch}.block_count
  int n_head = 0;
  int n_head_kv = 0;
  int n_expert = 0;   // {arch}.expert_count, 0 when absent
  // Throws FormatError naming the file for another architecture or a missing key.
  static QuantModelInfo from_metadata(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                                      const std::string& path);
};

// A tensor as the rules see it.
struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ne[0]: the row length
  GgmlType type = GgmlType::F32;
};

// One output tensor: the input tensor it comes from and its new type (== the input's: copied).
struct TensorPlan {
  size_t input = 0;
  GgmlType type = GgmlType::F32;
};

// llama-quantize's plan: the tensors in its order (by layer, then by name; tensors outside the
// blocks first) with the type of each.
std::vector<TensorPlan> plan_quantization(const std::vector<TensorInfo>& tensors, const QuantModelInfo& info,
                                          const QuantMix& mix);

// A model in memory, as write_gguf takes it; it owns its bytes.
struct QuantizedModel {
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::vector<std::vector<uint8_t>> storage;  // backs the tensors' bytes
  std::vector<GgufTensorData> tensors;
};

// Called after each tensor: (tensors done, tensors in all, name of the tensor just done).
using QuantizeProgress = std::function<void(int64_t done, int64_t total, const std::string& name)>;

// Quantizes a model held in memory (metadata and tensors as write_gguf takes them). Tensors that
// change type must be F32, F16 or BF16 (InvalidArgument naming the tensor otherwise). Rows are
// quantized in parallel (OpenMP); the bytes do not depend on the thread count. `path` names the
// model in errors.
QuantizedModel quantize_model(const std::vector<std::pair<std::string, GgufValue>>& metadata,
                              const std::vector<GgufTensorData>& tensors, const QuantMix& mix,
                              const std::string& path, const QuantizeProgress& progress = {});

// read_gguf(in) -> quantize_model -> write_gguf(out) (atomically).
void quantize_gguf(const std::string& in_path, const std::string& out_path, const QuantMix& mix,
                   const QuantizeProgress& progress = {});

// The --dtype of `ponder init` and `ponder export`: f32, f16 or bf16 (every matrix in that type),
// or a name of quant_mixes() (the F32 model quantized as llama-quantize would; quant set).
struct WeightFormat {
  GgmlType plain = GgmlType::F32;
  const QuantMix* quant = nullptr;
};
// Case-insensitive; throws InvalidArgument naming `flag` and the valid names.
WeightFormat parse_weight_format(const std::string& name, const std::string& flag = "--dtype");

}  // namespace ponder
