// ponder quantize IN OUT TYPE: an F32/F16/BF16 model quantized as llama.cpp's llama-quantize does.
#include <cstdio>
#include <filesystem>
#include <optional>

#include "app/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "model/quantize_model.h"

namespace ponder::app {

namespace {
struct QuantizeArgs {
  std::string input, output, type;
  int threads = 0;
};

void run_quantize(const QuantizeArgs& a) {
  const QuantMix& mix = parse_quant_mix(a.type);  // checked before reading anything
  if (!std::filesystem::exists(a.input)) throw InvalidArgument("input model '" + a.input + "' does not exist");
  set_threads(a.threads);
  const uintmax_t in_bytes = std::filesystem::file_size(a.input);
  std::optional<Progress> bar;  // its total (the tensor count) is known once the file is read
  quantize_gguf(a.input, a.output, mix, [&](int64_t done, int64_t total, const std::string& name) {
    if (!bar) bar.emplace(std::string("quantize ") + mix.name, total);
    bar->update(done, name);
  });
  if (bar) bar->finish();
  std::fprintf(stderr, "ponder: wrote %s (%s, %.2f MiB -> %.2f MiB)\n", a.output.c_str(), mix.name,
               double(in_bytes) / (1 << 20), double(std::filesystem::file_size(a.output)) / (1 << 20));
}
}  // namespace

void add_quantize(CLI::App& app) {
  auto* cmd = app.add_subcommand("quantize", "Quantize an F32/F16/BF16 GGUF model as llama.cpp's llama-quantize does");
  auto a = std::make_shared<QuantizeArgs>();
  cmd->add_option("input", a->input, "F32, F16 or BF16 GGUF model (llama or qwen2)")->required();
  cmd->add_option("output", a->output, "GGUF file to write")->required();
  cmd->add_option("type", a->type, "quantization type (case-insensitive): " + quant_mix_names())->required();
  cmd->add_option("-t,--threads", a->threads, "threads (0: all cores)");
  cmd->callback([a] { run_quantize(*a); });
}

}  // namespace ponder::app
