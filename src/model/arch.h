#pragma once
// Model architectures as data: the GGUF tensor names and the few flags that tell the families
// apart. Adding a family is adding a row to the table in arch.cpp.
#include <array>
#include <string>
#include <string_view>

#include "kernels/rope.h"

namespace ponder {

struct ArchInfo {
  std::string_view name;       // general.architecture
  RopeStyle rope_style;        // how the GGUF stores the rotary pairs
  bool qkv_bias;               // attn_q/k/v have biases (required)
  bool output_bias;            // attn_output has a bias (optional when false)
};

// Throws FormatError (naming `file`) for an architecture ponder does not run.
const ArchInfo& find_arch(std::string_view name, const std::string& file);

// GGUF tensor names, the same for every family ponder runs.
namespace tensor_name {
inline constexpr const char* token_embd = "token_embd.weight";
inline constexpr const char* output_norm = "output_norm.weight";
inline constexpr const char* output = "output.weight";
// blk.<layer>.<suffix>: attn_norm.weight, attn_q.weight, attn_q.bias, ...
std::string block(int layer, std::string_view suffix);
// The seven matrices of a block, in the order q, k, v, o, gate, up, down: what LoRA adapts (the
// trainer's targets, train/lora.h, and the adapters the engine applies, model/lora_apply.h).
inline constexpr std::array<const char*, 7> block_matrices = {"attn_q.weight",   "attn_k.weight", "attn_v.weight",
                                                              "attn_output.weight", "ffn_gate.weight",
                                                              "ffn_up.weight",   "ffn_down.weight"};
}  // namespace tensor_name

}  // namespace ponder
