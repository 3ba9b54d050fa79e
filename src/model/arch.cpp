#include "model/arch.h"

#include "core/error.h"

namespace ponder {

namespace {
// The families ponder runs. `llama` GGUFs store Q/K permuted for adjacent-pair rotation;
// `qwen2` keeps the Hugging Face layout, which rotates i with i + n_rot/2.
constexpr ArchInfo kArchs[] = {
    {.name = "llama", .rope_style = RopeStyle::Adjacent, .qkv_bias = false, .output_bias = false},
    {.name = "qwen2", .rope_style = RopeStyle::Neox, .qkv_bias = true, .output_bias = false},
};
}  // namespace

const ArchInfo& find_arch(std::string_view name, const std::string& file) {
  for (const ArchInfo& a : kArchs)
    if (a.name == name) return a;
  throw FormatError(file + ": general.architecture is '" + std::string(name) + "', ponder runs llama and qwen2");
}

std::string tensor_name::block(int layer, std::string_view suffix) {
  return "blk." + std::to_string(layer) + "." + std::string(suffix);
}

}  // namespace ponder
