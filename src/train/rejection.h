#pragma once
// Rejection sampling: draw N completions per prompt with the batched engine, keep the correct
// ones (by the task's accuracy reward, and the strict format unless told otherwise) as new SFT
// data: JSONL lines {"prompt", "completion"}, each distinct completion of a prompt once (a
// completion that is not valid UTF-8 is rejected: it is no JSON text). The
// output is a function of the options: path i of prompt k draws from Rng::derive(seed, k * N + i).
#include <string>

#include "tasks/task.h"

namespace ponder {

struct RejectionOptions {
  TaskOptions task;            // a built-in task (train split), or
  std::string data_path;       // JSONL {"prompt", "answer"}
  std::string model;           // GGUF
  int samples = 8;             // N per prompt
  int count = 100;             // prompts
  float temperature = 1.0f;
  float top_p = 1.0f;
  int top_k = 0;               // 0: off
  int max_tokens = 96;
  uint64_t seed = 0;
  bool require_format = true;
  int prompts_per_batch = 32;  // prompts decoded together
  std::string output;          // JSONL file to write
  void validate() const;       // InvalidArgument naming the flag, the allowed range and the value
};

struct RejectionResult {
  int prompts = 0, drawn = 0, accepted = 0, unique_accepted = 0, prompts_with_accept = 0;
  double seconds = 0;
  double acceptance_rate() const { return drawn > 0 ? double(accepted) / double(drawn) : 0.0; }
};

RejectionResult rejection_sample(const RejectionOptions& options);

}  // namespace ponder
