// ponder generate: decode a continuation of the prompt, streaming text to stdout.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/commands.h"
#include "decode/greedy.h"
#include "model/model.h"

namespace ponder::app {

namespace {
struct GenerateArgs {
  std::string model, prompt, file;
  int n_predict = 128;
  bool json = false, no_parse_special = false;
  int threads = 0;
};

void run_generate(const GenerateArgs& a, bool text_given, bool file_given) {
  set_threads(a.threads);
  const std::string text = read_prompt(a.prompt, a.file, text_given, file_given);
  const auto m = load_model(a.model);
  const Tokenizer& tok = m->tokenizer;
  const auto prompt = tok.encode(text, true, !a.no_parse_special);
  auto stream = [&](int32_t id) {
    if (a.json || tok.is_eog(id)) return;
    const std::string piece = tok.token_to_piece(id, true);
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  };
  if (!a.json) {
    // Echo the prompt as llama.cpp's tools do, then the continuation.
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }
  const GreedyResult r = generate_greedy(*m, prompt, a.n_predict, stream);
  std::vector<int32_t> shown = r.tokens;
  if (r.stopped_on_eog) shown.pop_back();
  if (a.json) {
    const nlohmann::json out = {{"tokens", r.tokens}, {"text", tok.decode(shown, true)},
                                {"finish_reason", r.stopped_on_eog ? "eos" : "length"}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    std::printf("\n");
  }
  std::fprintf(stderr, "ponder: prompt %zu tokens in %.3f s (%.1f tok/s), generated %zu tokens in %.3f s (%.1f tok/s)\n",
               prompt.size(), r.prompt_seconds, double(prompt.size()) / std::max(r.prompt_seconds, 1e-9),
               r.tokens.size(), r.generate_seconds,
               double(r.tokens.size() > 1 ? r.tokens.size() - 1 : 0) / std::max(r.generate_seconds, 1e-9));
}
}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate a continuation of a prompt (greedy)");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model file")->required();
  auto* p = cmd->add_option("-p,--prompt", a->prompt, "prompt text");
  auto* f = cmd->add_option("-f,--file", a->file, "file holding the prompt");
  cmd->add_option("-n,--n-predict", a->n_predict, "maximum new tokens")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", a->json, "print {\"tokens\": [...], \"text\": ...} instead of streaming text");
  cmd->add_flag("--no-parse-special", a->no_parse_special, "treat control-token text as plain text");
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->callback([a, p, f] { run_generate(*a, p->count() > 0, f->count() > 0); });
}

}  // namespace ponder::app
