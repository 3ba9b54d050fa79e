#pragma once
// A LoRA adapter GGUF (llama.cpp's format: general.type "adapter", adapter.type "lora",
// adapter.lora.alpha, tensors <matrix>.lora_a (r, in) and <matrix>.lora_b (out, r)) applied to a
// loaded model as llama.cpp applies one: at run time, y = x W^T + scale (alpha / r) (x A^T) B^T
// (model/model.h LoraDelta), the base matrices staying in their stored type, so a quantized base
// keeps its size and speed. This is `generate --lora FILE`; ponder's trainer writes such files
// (train/lora.h). One adapter per model.
#include <string>

#include "model/model.h"

namespace ponder {

// Throws FormatError naming the adapter file and the key or tensor: another architecture than the
// model's, not a LoRA adapter, a tensor without its pair, a matrix the model does not have, or
// shapes that do not fit it.
void apply_lora(Model& model, const std::string& adapter_path, float scale = 1.0f);

}  // namespace ponder
