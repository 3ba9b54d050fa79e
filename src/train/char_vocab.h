#pragma once
// The vocabulary of the models ponder trains: one token per byte (a byte-level BPE vocabulary
// with no merges, GGUF tokenizer model "gpt2", pre-tokenizer "gpt-2", so llama.cpp loads it),
// plus BOS/EOS and the reasoning tags <think> </think> <answer> </answer> as user-defined tokens
// (matched in raw text).
#include <string>
#include <utility>
#include <vector>

#include "formats/gguf.h"
#include "formats/tokenizer.h"

namespace ponder {

// tokenizer.* metadata for GGUF files.
std::vector<std::pair<std::string, GgufValue>> char_vocab_metadata();
// The tokenizer itself (built from that metadata).
Tokenizer char_tokenizer();

}  // namespace ponder
