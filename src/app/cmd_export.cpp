// ponder export: a training checkpoint as a GGUF model (llama architecture).
#include <cstdio>

#include "app/commands.h"
#include "core/error.h"
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
  cmd->add_option("--dtype", *dtype, "f32 | f16 | bf16 | q8_0 (matrices; norms stay f32)");
  cmd->callback([=] {
    const Checkpoint ck = read_checkpoint(*ck_path);
    const GgmlType type = *dtype == "f32" ? GgmlType::F32 : *dtype == "f16" ? GgmlType::F16
                        : *dtype == "bf16" ? GgmlType::BF16 : *dtype == "q8_0" ? GgmlType::Q8_0
                        : throw InvalidArgument("--dtype '" + *dtype + "': expected f32, f16, bf16 or q8_0");
    TrainModel m(ck.config);
    m.params = ck.params;
    const GgufFile tok = parse_gguf(ck.tokenizer, *ck_path + " (tokenizer)");
    export_gguf(m, tokenizer_metadata(tok), *out, type);
    std::fprintf(stderr, "ponder: wrote %s (%zu parameters, step %lld)\n", out->c_str(), m.n_params(), (long long)ck.step);
  });
}

}  // namespace ponder::app
