#pragma once
// Model hyper-parameters, read from GGUF metadata (`<arch>.embedding_length`, ...).
#include <cstdint>
#include <string>

#include "formats/gguf.h"
#include "model/arch.h"

namespace ponder {

struct ModelConfig {
  const ArchInfo* arch = nullptr;
  int n_embd = 0;       // C
  int n_layer = 0;      // L
  int n_head = 0;       // H
  int n_head_kv = 0;    // Hkv
  int head_dim = 0;     // D
  int n_ff = 0;         // F
  int n_vocab = 0;      // V
  int n_ctx_train = 0;  // context length the model was trained with
  int n_rot = 0;        // rotary dims per head (<= D)
  float rope_freq_base = 10000.0f;
  float rms_eps = 1e-5f;
  bool tied_embeddings = false;  // no output.weight: token_embd is the LM head

  int q_dim() const { return n_head * head_dim; }
  int kv_dim() const { return n_head_kv * head_dim; }
};

// Reads and validates the config; throws FormatError naming the file, key and values.
ModelConfig read_config(const GgufFile& f);

}  // namespace ponder
