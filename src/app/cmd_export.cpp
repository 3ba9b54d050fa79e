// ponder export: a training checkpoint as a GGUF model (the architecture it was trained as).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/error.h"
#include "model/quantize_model.h"
#include "train/checkpoint.h"
#include "train/lora.h"
#include "train/model_io.h"

namespace ponder::app {

void add_export(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write a training checkpoint as a GGUF model (or a LoRA run's adapter)");
  auto ck_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("f32");
  auto base_path = std::make_shared<std::string>();
  auto adapter = std::make_shared<bool>(false);
  cmd->add_option("--checkpoint", *ck_path, "checkpoint.bin written by ponder train")->required();
  cmd->add_option("-o,--output", *out, "GGUF file to write")->required();
  cmd->add_option("--dtype", *dtype,
                  "f32 | f16 | bf16, or a llama-quantize type (q8_0, q4_k_m, ...: as `ponder quantize` of the f32 "
                  "model); norms stay f32");
  cmd->add_option("--base", *base_path,
                  "LoRA checkpoints: the model the run adapted (default: the --model the run was started with)");
  cmd->add_flag("--adapter", *adapter, "LoRA checkpoints: write the adapter GGUF (llama.cpp's --lora) instead of the merged model");
  cmd->callback([=] {
    const WeightFormat format = parse_weight_format(*dtype);
    const Checkpoint ck = read_checkpoint(*ck_path);
    const GgufFile tok = parse_gguf(ck.tokenizer, *ck_path + " (tokenizer)");
    if (*adapter && !ck.lora.enabled()) throw InvalidArgument("--adapter: " + *ck_path + " is not a LoRA checkpoint");
    TrainModel m(ck.config);
    if (ck.lora.enabled()) {
      // The adapters apply to the base the run started from: read it again (its config must be the
      // checkpoint's).
      std::string base = *base_path;
      if (base.empty()) base = nlohmann::json::parse(ck.run_options).value("model", std::string());
      if (base.empty()) throw InvalidArgument(*ck_path + " holds LoRA adapters: give the model they adapt with --base");
      m = import_gguf(read_gguf(base));
      if (!(m.config == ck.config))
        throw FormatError(base + ": not the model the LoRA run of " + *ck_path + " adapted (another model config)");
      LoraAdapters lora(ck.config, ck.lora);
      lora.params = ck.params;
      if (*adapter) {
        export_lora_gguf(lora, ck.config, *out);
        std::fprintf(stderr, "ponder: wrote %s (LoRA rank %d, %zu parameters, step %lld)\n", out->c_str(), ck.lora.rank,
                     lora.params.size(), (long long)ck.step);
        return;
      }
      merge_lora(m, lora);
    } else {
      m.params = ck.params;
    }
    if (format.quant) export_gguf(m, tokenizer_metadata(tok), *out, *format.quant);
    else export_gguf(m, tokenizer_metadata(tok), *out, format.plain);
    std::fprintf(stderr, "ponder: wrote %s (%zu parameters, step %lld)\n", out->c_str(), m.n_params(), (long long)ck.step);
  });
}

}  // namespace ponder::app
