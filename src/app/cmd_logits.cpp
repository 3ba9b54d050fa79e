// ponder logits: JSON {"tokens": [...], "logits": [...]} for the last prompt position.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "core/error.h"
#include "model/forward.h"
#include "model/lora_apply.h"
#include "model/model.h"

namespace ponder::app {

namespace {
struct LogitsArgs {
  std::string model, prompt, file, lora;
  bool no_parse_special = false;
  int threads = 0;
};
}  // namespace

void add_logits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "Print the prompt's token ids and the logits at its last position (JSON)");
  auto a = std::make_shared<LogitsArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model file")->required();
  cmd->add_option("--lora", a->lora, "LoRA adapter GGUF to apply (default: none)");
  auto* p = cmd->add_option("-p,--prompt", a->prompt, "prompt text (BOS added as the model says); this or -f is required");
  auto* f = cmd->add_option("-f,--file", a->file, "file holding the prompt; this or -p is required");
  cmd->add_flag("--no-parse-special", a->no_parse_special, "treat control-token text as plain text");
  cmd->add_option("-t,--threads", a->threads, "threads (0: all cores)");
  cmd->callback([a, p, f] {
    set_threads(a->threads);
    const std::string text = read_prompt(a->prompt, a->file, p->count() > 0, f->count() > 0);
    const auto m = load_model(a->model);
    if (!a->lora.empty()) apply_lora(*m, a->lora);
    const auto tokens = m->tokenizer.encode(text, true, !a->no_parse_special);
    if (tokens.empty()) throw InvalidArgument("the prompt has no tokens (empty text and the model adds no BOS)");
    KvPool pool(m->config.n_layer, m->config.kv_dim(), 16, int(tokens.size() + 15) / 16);
    KvSeq seq;
    ForwardState st;
    std::vector<float> logits;
    BatchItem item{.seq = &seq, .tokens = tokens, .logits = LogitsFor::Last};
    forward(*m, pool, {&item, 1}, st, logits);
    nlohmann::json out = {{"tokens", tokens}, {"logits", logits}};
    std::printf("%s\n", out.dump().c_str());
  });
}

}  // namespace ponder::app
