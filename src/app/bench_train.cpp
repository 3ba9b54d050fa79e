// ponder bench --train and --rollouts: the two halves of a training step, measured on their own.
//  * --train: forward + backward + AdamW on a preset of the small model family, random tokens, the
//    same step SFT runs (bench/train_torch.py runs the same model and step in PyTorch).
//  * --rollouts: GRPO-style rollouts (P prompts x G completions) from a GGUF model, all groups in one
//    batched decode against the same completions generated one path at a time.
#include "app/bench_train.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <omp.h>
#include <optional>

#include "core/error.h"
#include "core/rng.h"
#include "decode/model_runner.h"
#include "decode/paths.h"
#include "kernels/fma_peak.h"
#include "model/model.h"
#include "tasks/task.h"
#include "train/adamw.h"
#include "train/char_vocab.h"
#include "train/forward_train.h"
#include "train/memory.h"
#include "train/model_io.h"

namespace ponder::app {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

void run_train_bench(const TrainBenchArgs& a) {
  if (a.batch < 1 || a.ctx < 2 || a.steps < 1) throw InvalidArgument("--batch and -r must be >= 1, --ctx >= 2");
  TrainConfig preset = find_train_preset(a.preset).config;
  preset.vocab = int(char_tokenizer().n_vocab());
  preset.ctx = std::max(preset.ctx, a.ctx);
  // With LoRA the base stays in its stored type, as in `train --lora-rank`.
  TrainModel m = a.model.empty() ? TrainModel(preset) : import_gguf(read_gguf(a.model), a.lora_rank > 0);
  if (a.model.empty()) init_params(m, 1);
  const TrainConfig& c = m.config;
  if (a.ctx > c.ctx)
    throw InvalidArgument("--ctx " + std::to_string(a.ctx) + " exceeds the model's context " + std::to_string(c.ctx));
  // What the step needs, as `train` counts it, before anything of it is allocated.
  const LoraConfig lora_config{.rank = a.lora_rank, .alpha = 2.0f * float(a.lora_rank)};
  check_training_memory(training_step_memory(c, a.batch, a.ctx, lora_config,
                                             m.frozen ? double(m.frozen->bytes()) : -1),
                        "--batch " + std::to_string(a.batch) + " and --ctx " + std::to_string(a.ctx));
  Rng rng(7);
  TrainBatch b{.B = a.batch, .T = a.ctx};
  for (int i = 0; i < a.batch * a.ctx; ++i) b.tokens.push_back(int32_t(rng.below(uint64_t(c.vocab))));
  for (int i = 0; i < a.batch * a.ctx; ++i)
    b.targets.push_back((i + 1) % a.ctx == 0 ? -1 : b.tokens[size_t(i) + 1]);
  int64_t n_targets = 0;
  for (int32_t t : b.targets) n_targets += t >= 0;
  const AdamWOptions opt{.lr = 1e-3f};
  std::optional<LoraAdapters> lora;
  if (a.lora_rank > 0) {
    lora.emplace(c, lora_config);
    init_lora(*lora, 1);
  }
  const LoraAdapters* adapters = lora ? &*lora : nullptr;
  AdamWState adam;
  Activations acts;
  std::vector<float> logp, grads;
  std::vector<float> dlogp(b.targets.size());
  for (size_t i = 0; i < dlogp.size(); ++i) dlogp[i] = b.targets[i] >= 0 ? -1.0f / float(n_targets) : 0.0f;

  // Model FLOPs per token: 6 x the matmul parameters (forward 2, backward 4), plus the attention
  // scores and mixing (QK^T and AV over on average T/2 keys: 2 x 2 x q_dim x T/2 forward, x3).
  double matmul_params = double(c.vocab) * c.dim;
  matmul_params += double(c.n_layers) * (double(c.dim) * (c.q_dim() + 2 * c.kv_dim()) + double(c.q_dim()) * c.dim +
                                         3.0 * c.dim * c.ffn);
  // With LoRA the frozen matrices cost 4 (forward 2, dX 2) and the adapters 6 per parameter.
  const double flops_per_token = (lora ? 4 * matmul_params + 6.0 * double(lora->params.size()) : 6 * matmul_params) +
                                 6.0 * c.n_layers * c.q_dim() * a.ctx;
  const double tokens = double(a.batch) * a.ctx;

  // The FMA peak is measured between the steps (0.1 s each) and every step is set against the
  // mean of the peaks just before and after it: on a shared machine whose speed drifts from minute
  // to minute, a step and its yardstick then see the same machine.
  const int threads = omp_get_max_threads();
  std::vector<double> fwd, bwd, upd, total, losses, peaks, shares;
  double peak_before = 0;
  for (int s = 0; s < a.steps + 1; ++s) {  // step 0 warms up (sizes the buffers)
    if (s == 1) peak_before = fma_peak_gflops(threads, 0.1);
    const auto t0 = Clock::now();
    losses.push_back(forward_train(m, b, acts, logp, 1.0f, adapters));
    const double t_f = seconds_since(t0);
    grads.assign(lora ? lora->params.size() : m.params.size(), 0.0f);
    backward_train(m, b, acts, dlogp, grads, adapters);
    const double t_b = seconds_since(t0);
    const double clip = clip_coefficient(grad_norm(grads), opt.max_grad_norm);
    if (lora) adamw_step(lora->layout, lora->params, grads, adam, opt, opt.lr, clip);
    else adamw_step(m, grads, adam, opt, opt.lr, clip);
    const double t_all = seconds_since(t0);
    if (s == 0) continue;
    fwd.push_back(t_f), bwd.push_back(t_b - t_f), upd.push_back(t_all - t_b), total.push_back(t_all);
    const double peak_after = fma_peak_gflops(threads, 0.1);
    const double peak_here = (peak_before + peak_after) / 2;
    peaks.push_back(peak_here);
    shares.push_back(flops_per_token * tokens / t_all / 1e9 / peak_here);
    peak_before = peak_after;
  }
  const double step_s = median(total);
  const double peak = median(peaks);
  const double share = median(shares);
  const nlohmann::json out = {
      {"model", a.model.empty() ? "preset " + a.preset : a.model},
      {"lora_rank", a.lora_rank},
      {"params", ParamLayout::for_config(c).total},
      {"frozen_base_bytes", m.frozen ? m.frozen->bytes() : 0},
      {"threads", omp_get_max_threads()},
      {"batch", a.batch},
      {"ctx", a.ctx},
      {"steps", a.steps},
      {"step_ms", step_s * 1e3},
      {"forward_ms", median(fwd) * 1e3},
      {"backward_ms", median(bwd) * 1e3},
      {"adamw_ms", median(upd) * 1e3},
      {"tok_s", tokens / step_s},
      {"gflop_s", flops_per_token * tokens / step_s / 1e9},
      {"fma_peak_gflop_s", peak},
      {"fma_peak_share", share},
      {"first_loss", losses.front()},
      {"last_loss", losses.back()},
  };
  if (a.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  const std::string frozen =
      m.frozen ? ", matrices frozen as stored: " + std::to_string(m.frozen->bytes() >> 20) + " MiB" : "";
  std::printf("train step, %s (%s, %zu parameters%s%s), batch %d x %d tokens, %d threads, median of %d steps\n",
              a.model.empty() ? ("preset " + a.preset).c_str() : a.model.c_str(), c.arch.c_str(),
              ParamLayout::for_config(c).total, frozen.c_str(),
              lora ? (", LoRA rank " + std::to_string(a.lora_rank) + ": " + std::to_string(lora->params.size()) +
                      " trained").c_str()
                   : "",
              a.batch, a.ctx, omp_get_max_threads(), a.steps);
  std::printf("  forward %8.1f ms  backward %8.1f ms  adamw %6.1f ms  total %8.1f ms\n", median(fwd) * 1e3,
              median(bwd) * 1e3, median(upd) * 1e3, step_s * 1e3);
  const double gflop_s = flops_per_token * tokens / step_s / 1e9;
  std::printf("  %.0f tokens/s, %.1f GFLOP/s (model FLOPs): %.0f%% of the FP32 FMA peak measured between the steps "
              "(median of the steps; peak %.0f GFLOP/s), loss %.4f -> %.4f\n",
              tokens / step_s, gflop_s, 100.0 * share, peak, losses.front(), losses.back());
}

void run_rollout_bench(const RolloutBenchArgs& a) {
  if (a.prompts < 1 || a.group < 1 || a.max_tokens < 1) throw InvalidArgument("--prompts, --group and -n must be >= 1");
  if (!(a.temperature > 0)) throw InvalidArgument("--temp must be > 0 for rollouts");
  const auto m = load_model(a.model);
  TaskOptions task{.name = a.task, .split = Split::Train, .seed = a.seed, .difficulty = a.difficulty};
  validate_task_options(task);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<PathsOptions> opts;
  for (const TaskItem& item : generate_items(task, a.prompts)) {
    prompts.push_back(m->tokenizer.encode(item.prompt, true, false));
    opts.push_back({.n = a.group, .sampling = {.temperature = a.temperature}, .seed = a.seed,
                    .path_offset = uint64_t(prompts.size() - 1) * uint64_t(a.group)});
  }
  const StopOptions stop{.max_tokens = a.max_tokens};

  // All groups in one batched decode, as a GRPO step runs them.
  ModelRunner batched(*m, kv_positions_for(prompts, a.group, a.max_tokens));
  auto t0 = Clock::now();
  const auto together = run_paths_batch(batched, prompts, opts, stop);
  const double batched_s = seconds_since(t0);

  // The same completions one path at a time (the prompt prefilled for each path), in one runner
  // sized for the longest prompt: run_paths releases its sequences when it returns.
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  ModelRunner single(*m, kv_positions_for(int64_t(longest), 1, 1, a.max_tokens));
  size_t tokens = 0, same = 0;
  t0 = Clock::now();
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int i = 0; i < a.group; ++i) {
      PathsOptions one = opts[p];
      one.n = 1;
      one.path_offset += uint64_t(i);
      const std::vector<Path> path = run_paths(single, prompts[p], one, stop);
      tokens += path[0].tokens.size();
      same += path[0].tokens == together[p][size_t(i)].tokens;
    }
  const double single_s = seconds_since(t0);
  const size_t paths = size_t(a.prompts) * size_t(a.group);
  const nlohmann::json out = {{"model", a.model},
                              {"threads", omp_get_max_threads()},
                              {"prompts", a.prompts},
                              {"group", a.group},
                              {"completion_tokens", tokens},
                              {"batched_seconds", batched_s},
                              {"batched_tok_s", double(tokens) / batched_s},
                              {"one_at_a_time_seconds", single_s},
                              {"one_at_a_time_tok_s", double(tokens) / single_s},
                              {"speedup", single_s / batched_s},
                              {"identical_paths", same},
                              {"paths", paths}};
  if (a.json) {
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("rollouts: %s, %d prompts x %d completions of %s (difficulty %d), T %.2f, %d threads\n",
              a.model.c_str(), a.prompts, a.group, a.task.c_str(), a.difficulty, double(a.temperature),
              omp_get_max_threads());
  std::printf("  all groups batched:  %7.2f s  %8.0f tok/s\n", batched_s, double(tokens) / batched_s);
  std::printf("  one path at a time:  %7.2f s  %8.0f tok/s\n", single_s, double(tokens) / single_s);
  std::printf("  speed-up %.1fx; %zu of %zu completions identical token for token (batch invariance)\n",
              single_s / batched_s, same, paths);
}

}  // namespace ponder::app
