#pragma once
// Training checkpoints: the model, the optimizer state and where the run is, so --resume
// continues exactly. Written atomically (temp file, fsync, rename): a run killed mid-write leaves
// the previous checkpoint intact. A checksum over the whole file catches corruption; a checkpoint
// from another model (config) or another run kind is refused with a clear error. The bytes are
// untrusted: every count and size is checked against the file and the model config before use
// (fuzz/checkpoint_fuzz.cpp).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/adamw.h"
#include "train/lora.h"
#include "train/params.h"

namespace ponder {

struct Checkpoint {
  std::string kind;            // "sft" | "grpo"
  TrainConfig config;
  LoraConfig lora{.rank = 0};  // rank > 0: params (and AdamW) hold the adapters of the model `config`
  std::vector<float> params;
  AdamWState adam;
  int64_t step = 0;            // optimizer steps done
  std::string run_options;     // the options the run was started with (JSON), checked on resume
  std::vector<std::pair<std::string, std::string>> extra;  // small named blobs (e.g. the reference model path)
  std::vector<uint8_t> tokenizer;  // the tokenizer.* metadata as a GGUF blob, for export
};

void write_checkpoint(const std::string& path, const Checkpoint& ck);
// Throws FormatError naming the file: bad magic/version, truncated, checksum mismatch, a config
// that is not a model, parameters or AdamW moments whose sizes do not fit the config.
Checkpoint read_checkpoint(const std::string& path);
// The same over the file's bytes (name: for messages).
Checkpoint parse_checkpoint(std::span<const uint8_t> bytes, const std::string& name);
// The checksum stored in the last 8 bytes of a checkpoint, over every byte before them.
uint64_t checkpoint_checksum(std::span<const uint8_t> bytes);

// --resume: the options a run was started with (stored_json, from the checkpoint) against this
// run's (current_json), both JSON objects. Throws FormatError naming the file and, for each key
// that differs, both values: "lr: 0.002 in the checkpoint, 0.01 now".
void check_run_options(const std::string& path, const std::string& stored_json, const std::string& current_json);

// --resume: the checkpoint at path, refused unless it is of this kind ("sft", "grpo"), from this
// model (config; model_flags names where the config came from, for the message) and written with
// these run options. InvalidArgument when there is no checkpoint, FormatError otherwise.
Checkpoint read_checkpoint_for_resume(const std::string& path, const std::string& kind, const TrainConfig& config,
                                      const std::string& model_flags, const std::string& run_options);

// Keeps the lines of a metrics JSONL file whose "step" is <= last_step: a resumed run rewrites
// what came after its checkpoint.
void truncate_metrics(const std::string& path, int64_t last_step);

}  // namespace ponder
