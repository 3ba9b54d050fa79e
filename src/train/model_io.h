#pragma once
// Trained models as GGUF files (architecture "llama" or "qwen2", the tensor names, shapes and
// metadata keys of llama.cpp's converter), so `ponder generate` and llama.cpp both load them, and back.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/ggml_type.h"
#include "formats/gguf.h"
#include "formats/tokenizer.h"
#include "model/model.h"
#include "model/quantize_model.h"
#include "train/params.h"

namespace ponder {

// tokenizer_metadata: the tokenizer.* keys to store (char_vocab_metadata() for ponder's models).
// Without a tokenizer.chat_template among them, the compact template is written (the prompt
// format of ponder's built-in tasks, formats/chat_template.h), so `ponder generate --chat` renders
// exactly the prompts the model was trained on.
void export_gguf(const TrainModel& m, const std::vector<std::pair<std::string, GgufValue>>& tokenizer_metadata,
                 const std::string& path, GgmlType dtype = GgmlType::F32, const std::string& name = "ponder");
// The same model quantized as llama-quantize TYPE would quantize its F32 file (model/quantize_model.h).
void export_gguf(const TrainModel& m, const std::vector<std::pair<std::string, GgufValue>>& tokenizer_metadata,
                 const std::string& path, const QuantMix& quant, const std::string& name = "ponder");

// The inference engine's view of a trainable model, without a copy: the weights point into
// m.params (F32), so the engine always runs the current parameters (GRPO rollouts).
std::unique_ptr<Model> inference_model(const TrainModel& m, const Tokenizer& tokenizer);

// A llama or qwen2 GGUF as a trainable model, every tensor converted to f32 (any type the engine
// reads). Throws FormatError naming the file and the key or tensor for other architectures,
// shapes, or a tensor the trainer has no parameter for. freeze_matrices (LoRA): every matrix
// (token_embd, the seven block matrices, output) stays in the file's type, frozen
// (TrainModel::frozen; the file's mapping is kept); only norms and biases become f32.
TrainModel import_gguf(const GgufFile& f, bool freeze_matrices = false);
// The tokenizer.* keys of a file (to write them back on export).
std::vector<std::pair<std::string, GgufValue>> tokenizer_metadata(const GgufFile& f);

}  // namespace ponder
