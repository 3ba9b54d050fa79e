#pragma once
// The memory of a training step, checked before anything is allocated, so a --batch or --max-len
// the machine cannot hold is an error naming the flags and the GiB, never bad_alloc or an OOM kill.
// Counted: the parameters, the gradient buffer, AdamW's two moments, and for one micro-batch of
// (rows, tokens per row) everything forward_train records and backward_train uses as scratch
// (train/forward_train.h: Activations, including the (B, H, T, T) attention probabilities per
// layer and the (B*T, V) logits; with LoRA train/frozen_head.h's scratch instead of the logits).
// The sums are doubles: products of untrusted flags overflow int64.
#include <cstdint>
#include <string>

#include "train/config.h"
#include "train/lora.h"

namespace ponder {

struct TrainStepMemory {
  double params = 0;       // bytes of the f32 parameters
  double grads = 0;        // the gradient buffer (the parameters' layout)
  double optimizer = 0;    // AdamW m and v
  double activations = 0;  // Activations + log-probs and their gradients for one micro-batch
  double other = 0;        // the caller's extra (GRPO: the reference model, the rollout KV cache)
  double total() const { return params + grads + optimizer + activations + other; }
};

// What one optimizer step of model c needs with micro-batches of rows x tokens_per_row.
// With LoRA the base has no gradient or optimizer state, the adapters do (and their x A^T
// activations are counted). frozen_bytes >= 0: the base's matrices stay frozen in their file
// (TrainModel::frozen, that many stored bytes), read as f32 one matrix (or head piece) at a time.
TrainStepMemory training_step_memory(const TrainConfig& c, int64_t rows, int64_t tokens_per_row,
                                     const LoraConfig& lora = {.rank = 0}, double frozen_bytes = -1);

// Bytes this process can still allocate: MemAvailable of /proc/meminfo, lowered to the cgroup's
// memory.max - memory.current when a limit is set (containers); sysconf's available pages when
// /proc is missing.
double available_memory_bytes();

// Throws InvalidArgument when need.total() exceeds 90% of `available`, naming `flags` (e.g.
// "--batch 4096 and --max-len 256"; under mpirun the step's memory counts once per rank on this
// machine, and the message says so) and the GiB needed, split into activations and the rest:
//   --batch 4096 and --max-len 256 need 93.2 GiB for a training step (activations 90.1 GiB;
//   parameters, gradients and AdamW 3.1 GiB), more than 90% of the 12.3 GiB this machine has
//   available; lower them
void check_training_memory(const TrainStepMemory& need, const std::string& flags,
                           double available = available_memory_bytes());

}  // namespace ponder
