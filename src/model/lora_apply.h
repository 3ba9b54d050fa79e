#pragma once
// A LoRA adapter GGUF (llama.cpp's format: general.type "adapter", adapter.type "lora",
// adapter.lora.alpha, tensors <matrix>.lora_a (r, in) and <matrix>.lora_b (out, r)) applied to a
// loaded model: each adapted matrix becomes W + scale (alpha / r) B A in F32 (dequantized from its
// stored type, the sum taken once at load), so decoding runs at the base model's speed. This is
// `generate --lora FILE`; ponder's trainer writes such files (train/lora.h).
#include <string>

#include "model/model.h"

namespace ponder {

// Throws FormatError naming the adapter file and the key or tensor: another architecture than the
// model's, not a LoRA adapter, a tensor without its pair, a matrix the model does not have, or
// shapes that do not fit it.
void apply_lora(Model& model, const std::string& adapter_path, float scale = 1.0f);

}  // namespace ponder
