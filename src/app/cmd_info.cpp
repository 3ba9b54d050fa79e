// ponder info -m FILE: architecture, dimensions, tensor types, vocabulary and special tokens.
#include <cstdio>
#include <map>

#include "app/commands.h"
#include "core/cpu.h"
#include "kernels/matmul.h"
#include "model/model.h"

namespace ponder::app {

namespace {

std::string token_label(const Tokenizer& tok, int32_t id) {
  if (id < 0) return "none";
  return std::to_string(id) + " '" + tok.token_to_piece(id, true) + "'";
}

}  // namespace

std::map<std::string, std::string> kernel_paths(const Model& m) {
  std::map<std::string, std::string> paths;
  auto add = [&](const WeightView& v) {
    std::string& p = paths[ggml_type_name(uint32_t(v.type))];
    const std::string k = matmul_kernel_path(v);
    if (p.find(k) == std::string::npos) p += (p.empty() ? "" : "/") + k;
  };
  for (const LayerWeights& l : m.weights.layers)
    for (const WeightView* v : {&l.attn_q, &l.attn_k, &l.attn_v, &l.attn_output, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
      add(*v);
  add(m.weights.output);
  return paths;
}

namespace {

void run_info(const std::string& path) {
  const auto m = load_model(path);
  const ModelConfig& c = m->config;
  std::printf("file:           %s\n", path.c_str());
  std::printf("architecture:   %s\n", std::string(c.arch->name).c_str());
  if (const GgufValue* n = m->file.find("general.name"); n && n->type() == GgufType::STRING)
    std::printf("name:           %s\n", std::get<std::string>(n->v).c_str());
  std::printf("embedding:      %d\nlayers:         %d\nheads:          %d (KV heads %d, head dim %d)\n", c.n_embd,
              c.n_layer, c.n_head, c.n_head_kv, c.head_dim);
  std::printf("ffn:            %d\nvocab:          %d\ncontext:        %d\n", c.n_ff, c.n_vocab, c.n_ctx_train);
  std::printf("rope:           %s, %d dims, base %g\nrms eps:        %g\n",
              c.arch->rope_style == RopeStyle::Neox ? "neox (i, i+n/2)" : "adjacent pairs", c.n_rot,
              double(c.rope_freq_base), double(c.rms_eps));
  std::printf("lm head:        %s\n", c.tied_embeddings ? "tied to token_embd" : "output.weight");
  std::map<std::string, std::pair<int, uint64_t>> types;
  uint64_t total = 0;
  int64_t params = 0;
  for (const GgufTensor& t : m->file.tensors) {
    auto& [n, bytes] = types[ggml_type_name(uint32_t(t.type))];
    ++n;
    bytes += t.n_bytes;
    total += t.n_bytes;
    params += t.n_elements();
  }
  std::printf("tensors:        %zu, %.2f M parameters (%lld), %.1f MiB\n", m->file.tensors.size(), double(params) / 1e6,
              (long long)params,
              double(total) / (1 << 20));
  for (const auto& [name, v] : types)
    std::printf("  %-5s %4d tensors, %.1f MiB\n", name.c_str(), v.first, double(v.second) / (1 << 20));
  std::printf("cpu features:   %s\nmatmul kernels:", cpu_features_string().c_str());
  for (const auto& [type, path] : kernel_paths(*m)) std::printf(" %s %s;", type.c_str(), path.c_str());
  std::printf("\n");
  const Tokenizer& tok = m->tokenizer;
  const Vocab& vc = tok.vocab();
  std::printf("tokenizer:      %s, pre-tokenizer %s\n", vc.model == TokenizerModel::Spm ? "llama (SentencePiece)" : "gpt2 (byte-level BPE)",
              vc.pre.c_str());
  std::printf("bos:            %s%s\n", token_label(tok, vc.bos).c_str(), vc.add_bos ? " (added)" : "");
  std::printf("eos:            %s%s\n", token_label(tok, vc.eos).c_str(), vc.add_eos ? " (added)" : "");
  std::printf("end of generation:");
  for (int32_t id : vc.eog) std::printf(" %s", token_label(tok, id).c_str());
  std::printf("\nchat template:  %s\n", m->file.find("tokenizer.chat_template") ? "yes" : "no");
}

}  // namespace

void add_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show a model's architecture, dimensions, tensor types and vocabulary");
  auto path = std::make_shared<std::string>();
  cmd->add_option("-m,--model", *path, "GGUF model file")->required();
  cmd->callback([path] { run_info(*path); });
}

}  // namespace ponder::app
