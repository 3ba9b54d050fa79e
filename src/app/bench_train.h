#pragma once
// ponder bench --train (a training step of a preset or of a GGUF model) and --rollouts (GRPO-style
// rollouts batched vs one path at a time). Both print figures; neither asserts anything.
#include <cstdint>
#include <string>

namespace ponder::app {

struct TrainBenchArgs {
  std::string preset = "5m";  // a train preset (ponder train sft --help lists them), or
  std::string model;          // a GGUF the trainer imports (llama or qwen2, any vocabulary)
  int batch = 16, ctx = 256;  // sequences per step and tokens per sequence
  int lora_rank = 0;          // > 0: LoRA adapters of this rank on every block matrix, the base frozen
  int steps = 5;              // timed steps (after one warm-up step); the median is reported
  bool json = false;
};
void run_train_bench(const TrainBenchArgs& args);

struct RolloutBenchArgs {
  std::string model;           // GGUF model (e.g. the demo's out/demo/ponder-arith.gguf)
  std::string task = "arith";
  int difficulty = 0;
  int prompts = 16, group = 8;  // GRPO's prompts per step and G
  int max_tokens = 64;
  float temperature = 0.8f;
  uint64_t seed = 1;
  bool json = false;
};
void run_rollout_bench(const RolloutBenchArgs& args);

}  // namespace ponder::app
