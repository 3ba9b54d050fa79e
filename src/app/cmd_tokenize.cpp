// ponder tokenize: like llama-tokenize. Prints "id -> 'piece'" per token, or only the ids.
#include <cstdio>

#include "app/commands.h"
#include "formats/gguf.h"
#include "formats/tokenizer.h"

namespace ponder::app {

namespace {
struct TokenizeArgs {
  std::string model, prompt, file;
  bool ids = false, no_bos = false, no_parse_special = false;
};
}  // namespace

void add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Tokenize text with a model's tokenizer");
  auto a = std::make_shared<TokenizeArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF file (a vocab-only file is enough)")->required();
  auto* p = cmd->add_option("-p,--prompt", a->prompt, "text to tokenize; this or -f is required");
  auto* f = cmd->add_option("-f,--file", a->file, "file whose contents to tokenize; this or -p is required");
  cmd->add_flag("--ids", a->ids, "print only the ids, as a list [1, 2, ...]");
  cmd->add_flag("--no-bos", a->no_bos, "do not add BOS/EOS even when the model says so");
  cmd->add_flag("--no-parse-special", a->no_parse_special, "treat control-token text as plain text");
  cmd->callback([a, p, f] {
    const std::string text = read_prompt(a->prompt, a->file, p->count() > 0, f->count() > 0);
    const Tokenizer tok = Tokenizer::from_gguf(read_gguf(a->model));
    const auto ids = tok.encode(text, !a->no_bos, !a->no_parse_special);
    if (a->ids) {
      std::printf("[");
      for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? ", %d" : "%d", ids[i]);
      std::printf("]\n");
      return;
    }
    for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, tok.token_to_piece(id, true).c_str());
  });
}

}  // namespace ponder::app
