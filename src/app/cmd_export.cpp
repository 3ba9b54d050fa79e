// ponder export: a training checkpoint as a GGUF model (the architecture it was trained as).
#include <cstdio>

#include "app/commands.h"
#include "core/error.h"
#include "model/quantize_model.h"
#include "train/checkpoint.h"
#include "train/model_io.h"

namespace ponder::app {

void add_export(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write a training checkpoint as a GGUF model");
  auto ck_path = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto dtype = std::make_shared<std::string>("f32");
  cmd->add_option("--checkpoint", *ck_path, "checkpoint.bin written by ponder train")->required();
  cmd->add_option("-o,--output", *out, "GGUF file to write")->required();
  cmd->add_option("--dtype", *dtype,
                  "f32 | f16 | bf16, or a llama-quantize type (q8_0, q4_k_m, ...: as `ponder quantize` of the f32 "
                  "model); norms stay f32");
  cmd->callback([=] {
    const WeightFormat format = parse_weight_format(*dtype);
    const Checkpoint ck = read_checkpoint(*ck_path);
    TrainModel m(ck.config);
    m.params = ck.params;
    const GgufFile tok = parse_gguf(ck.tokenizer, *ck_path + " (tokenizer)");
    if (format.quant) export_gguf(m, tokenizer_metadata(tok), *out, *format.quant);
    else export_gguf(m, tokenizer_metadata(tok), *out, format.plain);
    std::fprintf(stderr, "ponder: wrote %s (%zu parameters, step %lld)\n", out->c_str(), m.n_params(), (long long)ck.step);
  });
}

}  // namespace ponder::app
