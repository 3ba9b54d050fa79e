// llama.cpp's view of a GGUF model for ponder's cross-checks (tools/check_vs_llamacpp.sh): the
// prompt's tokens, the logits at its last position and N greedy tokens (argmax of the raw logits),
// as JSON on stdout, optionally with a LoRA adapter. Built against a llama.cpp build outside the
// repository (../shared/tools/build-llamacpp.sh); not part of ponder's build.
//   llamacpp_logits MODEL.gguf PROMPT N_PREDICT [LORA.gguf]
// Settings as ../shared/refdata: CPU, 2 threads, n_ctx = n_batch = 512, F32 KV cache, whole
// prompt in one decode, BOS as the model says, special tokens parsed.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s MODEL.gguf PROMPT N_PREDICT [LORA.gguf]\n", argv[0]);
    return 2;
  }
  const int n_predict = std::atoi(argv[3]);
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) return std::fprintf(stderr, "cannot load %s\n", argv[1]), 1;
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = cp.n_batch = cp.n_ubatch = 512;
  cp.n_threads = cp.n_threads_batch = 2;
  cp.type_k = cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) return std::fprintf(stderr, "cannot create a context\n"), 1;
  if (argc > 4) {
    llama_adapter_lora* lora = llama_adapter_lora_init(model, argv[4]);
    if (!lora) return std::fprintf(stderr, "cannot load the adapter %s\n", argv[4]), 1;
    float scale = 1.0f;
    if (llama_set_adapters_lora(ctx, &lora, 1, &scale) != 0) return std::fprintf(stderr, "cannot set the adapter\n"), 1;
  }
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const std::string prompt = argv[2];
  std::vector<llama_token> tokens(prompt.size() + 8);
  const int n = llama_tokenize(vocab, prompt.c_str(), int(prompt.size()), tokens.data(), int(tokens.size()), true, true);
  if (n < 0) return std::fprintf(stderr, "tokenize failed\n"), 1;
  tokens.resize(size_t(n));
  const int n_vocab = llama_vocab_n_tokens(vocab);
  std::printf("{\"prompt_tokens\": [");
  for (int i = 0; i < n; ++i) std::printf("%s%d", i ? ", " : "", tokens[size_t(i)]);
  std::printf("], \"logits\": [");
  if (llama_decode(ctx, llama_batch_get_one(tokens.data(), n)) != 0) return std::fprintf(stderr, "decode failed\n"), 1;
  const float* logits = llama_get_logits_ith(ctx, -1);
  for (int i = 0; i < n_vocab; ++i) std::printf("%s%.9g", i ? ", " : "", double(logits[i]));
  std::printf("], \"greedy\": [");
  for (int step = 0; step < n_predict; ++step) {
    const float* l = llama_get_logits_ith(ctx, -1);
    llama_token best = 0;
    for (int i = 1; i < n_vocab; ++i)
      if (l[i] > l[best]) best = i;
    std::printf("%s%d", step ? ", " : "", best);
    if (llama_vocab_is_eog(vocab, best)) break;
    if (llama_decode(ctx, llama_batch_get_one(&best, 1)) != 0) return std::fprintf(stderr, "decode failed\n"), 1;
  }
  std::printf("]}\n");
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
