#pragma once
// Supervised fine-tuning (the cold start): masked cross-entropy on the completion tokens only,
// batches padded to their longest sequence, gradient accumulation, AdamW with warmup + cosine,
// metrics (OUT/metrics.jsonl), atomic checkpoints and exact resume, held-out scores from the
// caller's Evaluator (train/hooks.h). Plots are drawn by the caller (eval/training_plots.h).
#include <cstdint>
#include <string>
#include <vector>

#include "formats/tokenizer.h"
#include "tasks/task.h"
#include "train/adamw.h"
#include "train/forward_train.h"
#include "train/hooks.h"
#include "train/lora.h"

namespace ponder {

struct SftOptions {
  // Data: a built-in task (task.name non-empty) or a JSONL file of {"prompt", "completion"}.
  TaskOptions task;             // task.name empty when data_path is used
  std::string data_path;
  // Model: a preset trained from scratch (with the character vocabulary) or a GGUF to start from.
  std::string preset;
  std::string init_model;
  LoraConfig lora{.rank = 0};   // rank > 0: train adapters on the frozen --model (train/lora.h)
  int steps = 200;
  int batch_size = 16;
  int grad_accum = 1;
  int max_len = 256;            // tokens per sequence (longer examples are cut)
  AdamWOptions adamw{.lr = 2e-3f, .weight_decay = 0.1f, .max_grad_norm = 1.0f};
  int warmup = 20;
  float min_lr_ratio = 0.1f;
  uint64_t seed = 0;
  int eval_every = 0;           // call the Evaluator every N steps (0: only at the end)
  std::string out_dir = "out/sft";
  int save_every = 50;
  bool resume = false;          // continue from OUT/checkpoint.bin (an error when there is none)
  bool quiet = false;           // no progress bar
  int stop_after = 0;           // > 0: stop after this many steps of this run, as if killed (tests)

  void validate() const;        // InvalidArgument naming the option
  std::string to_json() const;  // what a checkpoint records (and --resume checks)
};

struct SftResult {
  double final_loss = 0;        // mean over the last 10 steps
  std::string lora_path;        // with LoRA: the adapter GGUF (llama.cpp's --lora format)
  double eval_accuracy = -1;    // the Evaluator's last score (-1: not evaluated)
  double eval_format = -1;
  int64_t resumed_from = 0;     // the checkpoint's step (--resume), else 0
  double tokens_per_second = 0; // trained tokens (forward + backward + AdamW), whole run
  std::string model_path;       // the exported GGUF
  std::vector<double> losses;   // per step
};

// Trains, checkpoints, exports OUT/model.gguf (with the compact chat template, train/model_io.h)
// and, when `evaluate` is given, scores the current weights every eval_every steps and at the end.
// Throws InvalidArgument for bad options (and a step that needs more memory than the machine has,
// train/memory.h), FormatError for bad data or a checkpoint that does not match the run.
SftResult run_sft(const SftOptions& options, const Evaluator& evaluate = {});

// One tokenized example: BOS + prompt + completion + EOS, with the next-token targets set on the
// completion (and EOS) only.
struct SftSequence {
  std::vector<int32_t> tokens;
  std::vector<int32_t> targets;  // -1 on the prompt
};
SftSequence tokenize_sft(const Tokenizer& tok, const std::string& prompt, const std::string& completion, int max_len);
// Pads sequences (with EOS, targets -1) into a (B, T) batch, T the longest.
TrainBatch make_batch(const std::vector<SftSequence>& seqs, int32_t pad);

}  // namespace ponder
