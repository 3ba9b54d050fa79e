// ponder init: write a random-weight model of a preset's or given shapes, with a copied tokenizer.
#include <cstdio>
#include <sstream>

#include "app/commands.h"
#include "core/error.h"
#include "model/init.h"
#include "model/quantize_model.h"

namespace ponder::app {

namespace {
struct InitArgs {
  std::string arch, preset, dims, dtype = "f32", vocab, output, name = "ponder-random";
  uint64_t seed = 0;
};

// --dims EMBD,LAYERS,HEADS,KV_HEADS,FFN
void parse_dims(const std::string& s, ModelShape& shape) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      v.push_back(std::stoi(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw InvalidArgument("--dims '" + s + "': '" + item + "' is not an integer");
    }
  }
  if (v.size() != 5) throw InvalidArgument("--dims '" + s + "': expected EMBD,LAYERS,HEADS,KV_HEADS,FFN (5 numbers)");
  shape.n_embd = v[0], shape.n_layer = v[1], shape.n_head = v[2], shape.n_head_kv = v[3], shape.n_ff = v[4];
}

void run_init(const InitArgs& a) {
  if (a.preset.empty() == a.dims.empty()) throw InvalidArgument("give exactly one of --preset NAME or --dims ...");
  InitOptions opt;
  if (!a.preset.empty()) opt.shape = find_preset(a.preset).shape;
  if (!a.arch.empty()) opt.shape.arch = a.arch;
  if (!a.dims.empty()) parse_dims(a.dims, opt.shape);
  const WeightFormat format = parse_weight_format(a.dtype);
  opt.dtype = format.plain;
  opt.quant = format.quant;
  opt.seed = a.seed;
  opt.vocab_path = a.vocab;
  opt.output_path = a.output;
  opt.name = a.name;
  write_random_model(opt);
  std::fprintf(stderr, "ponder: wrote %s\n", a.output.c_str());
}
}  // namespace

void add_init(CLI::App& app) {
  auto* cmd = app.add_subcommand("init", "Write a random-weight model (GGUF) with realistic shapes");
  auto a = std::make_shared<InitArgs>();
  std::string presets;
  for (const Preset& p : model_presets()) presets += "\n  " + p.name + ": " + p.description;
  cmd->add_option("--arch", a->arch, "llama or qwen2 (default: the preset's; qwen2 with --dims)");
  cmd->add_option("--preset", a->preset, "shape preset (this or --dims is required):" + presets);
  cmd->add_option("--dims", a->dims, "EMBD,LAYERS,HEADS,KV_HEADS,FFN instead of a preset (this or --preset is required)");
  cmd->add_option("--dtype", a->dtype,
                  "weight type: f32, f16, bf16, or a llama-quantize type (q8_0, q4_k_m, ...: the f32 model quantized "
                  "as `ponder quantize` does); norms and biases stay f32");
  cmd->add_option("--seed", a->seed, "random seed");
  cmd->add_option("--vocab", a->vocab, "GGUF file whose tokenizer to copy")->required();
  cmd->add_option("--name", a->name, "general.name");
  cmd->add_option("-o,--output", a->output, "output GGUF file")->required();
  cmd->callback([a] { run_init(*a); });
}

}  // namespace ponder::app
