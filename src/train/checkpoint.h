#pragma once
// Training checkpoints: the model, the optimizer state and where the run is, so --resume
// continues exactly. Written atomically (temp file, fsync, rename): a run killed mid-write leaves
// the previous checkpoint intact. A checksum over the whole file catches corruption; a checkpoint
// from another model (config) or another run kind is refused with a clear error.
#include <cstdint>
#include <string>
#include <vector>

#include "train/adamw.h"
#include "train/params.h"

namespace ponder {

struct Checkpoint {
  std::string kind;            // "sft" | "grpo"
  TrainConfig config;
  std::vector<float> params;
  AdamWState adam;
  int64_t step = 0;            // optimizer steps done
  std::string run_options;     // the options the run was started with (JSON), checked on resume
  std::vector<std::pair<std::string, std::string>> extra;  // small named blobs (e.g. the reference model path)
  std::vector<uint8_t> tokenizer;  // the tokenizer.* metadata as a GGUF blob, for export
};

void write_checkpoint(const std::string& path, const Checkpoint& ck);
// Throws FormatError naming the file: bad magic/version, truncated, checksum mismatch.
Checkpoint read_checkpoint(const std::string& path);

}  // namespace ponder
