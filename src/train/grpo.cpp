#include "train/grpo.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "decode/model_runner.h"
#include "model/model.h"
#include "tasks/dataset.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/grpo_step.h"
#include "train/memory.h"
#include "train/model_io.h"

namespace ponder {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Everything the loop reads and writes.
struct GrpoRun {
  std::unique_ptr<TrainModel> policy;
  std::optional<TrainModel> reference;  // frozen starting model: the KL anchor (beta > 0 only, no LoRA)
  std::optional<LoraAdapters> lora;     // with LoRA: what is trained; policy stays the frozen base
  std::unique_ptr<Model> engine;        // what rollouts run: the inference view of policy->params, or
                                        // with LoRA the base file with the adapters attached (not
                                        // merged); either way rollouts see every update
  Tokenizer tokenizer;
  std::vector<std::pair<std::string, GgufValue>> tokenizer_meta;
  RewardSpec rewards;
  PromptSource prompts;
  int64_t next_prompt = 0;              // the stream position of the next generation batch
  AdamWState adam;
  LrSchedule schedule;
  int64_t start = 0;                    // the first step of this run (the checkpoint's step when resuming)
  std::string ck_path, metrics_path, model_path;
  UpdateScratch scratch;
  GrpoResult result;
};

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path, std::ios::app) << j.dump() << "\n";
}


bool every(int n, int64_t step) { return n > 0 && (step + 1) % n == 0; }

// The memory of a step, refused up front when the machine lacks it: the training pass over one
// micro-batch (rows of the longest first-step prompt plus a whole completion, at most the model's
// context), the frozen reference with --beta, and the KV cache of the step's rollouts.
void check_memory(const GrpoRun& run, const GrpoOptions& o) {
  const TrainConfig& c = run.policy->config;
  int64_t longest = 1;
  std::vector<std::vector<int32_t>> prompts;
  for (int p = 0; p < o.prompts_per_step; ++p)
    prompts.push_back(run.tokenizer.encode(run.prompts.at(run.next_prompt + p).prompt, true, true));
  for (const auto& p : prompts) longest = std::max(longest, int64_t(p.size()));
  const int64_t tokens = std::min<int64_t>(c.ctx, longest + o.max_completion_length);
  const int64_t rows = std::min<int64_t>(o.micro_batch, int64_t(o.prompts_per_step) * o.num_generations);
  const FrozenMatrices* frozen = run.policy->frozen.get();
  TrainStepMemory need = training_step_memory(c, rows, tokens, o.lora, frozen ? double(frozen->bytes()) : -1);
  if (o.lora.enabled())  // the engine's copy of the base (its kernels' layouts; at most the stored size)
    need.other += frozen ? double(frozen->bytes()) : double(ParamLayout::for_config(c).total) * sizeof(float);
  else if (o.beta > 0)  // the reference model
    need.other += double(ParamLayout::for_config(c).total) * sizeof(float);
  need.other += double(kv_positions_for(prompts, o.num_generations, o.max_completion_length)) * double(c.n_layers) *
                double(c.kv_dim()) * 2 * sizeof(float);
  const int64_t rollouts = int64_t(o.prompts_per_step) * o.num_generations;
  need.other += GradientSum::extra_bytes(need.grads, (rollouts + o.micro_batch - 1) / o.micro_batch);
  check_training_memory(need, "--micro-batch " + std::to_string(o.micro_batch) + ", --prompts-per-step " +
                                  std::to_string(o.prompts_per_step) + " x --num-generations " +
                                  std::to_string(o.num_generations) + " and --max-completion-length " +
                                  std::to_string(o.max_completion_length));
}

// Under mpirun -np R each rank rolls out whole groups: a generation batch needs at least R.
void check_ranks(const GrpoOptions& o) {
  const int R = dist().size;
  if (o.prompts_per_step < R)
    throw InvalidArgument("--prompts-per-step " + std::to_string(o.prompts_per_step) + " is fewer than the " +
                          std::to_string(R) + " MPI ranks (each rank rolls out whole groups): use at least " +
                          std::to_string(R));
}

// The checkpoint of an earlier run with the same options and model (--resume).
void resume_from_checkpoint(GrpoRun& run, const GrpoOptions& o) {
  const Checkpoint ck = read_checkpoint_for_resume(run.ck_path, "grpo", run.policy->config, "--model", o.to_json());
  const auto cursor = std::find_if(ck.extra.begin(), ck.extra.end(), [](const auto& e) { return e.first == "next_prompt"; });
  if (cursor == ck.extra.end()) throw FormatError(run.ck_path + ": a GRPO checkpoint without its 'next_prompt' entry");
  try {
    run.next_prompt = std::stoll(cursor->second);
  } catch (const std::exception&) {
    throw FormatError(run.ck_path + ": 'next_prompt' is '" + cursor->second + "', expected a number");
  }
  if (!(ck.lora == o.lora) && (ck.lora.enabled() || o.lora.enabled()))
    throw FormatError(run.ck_path + ": LoRA rank " + std::to_string(ck.lora.rank) + " in the checkpoint, " +
                      std::to_string(o.lora.rank) + " now");
  (run.lora ? run.lora->params : run.policy->params) = ck.params;
  run.adam = ck.adam;
  run.start = ck.step;
  run.result.resumed_from = ck.step;
  if (dist().root()) truncate_metrics(run.metrics_path, run.start);
}

GrpoRun start_run(const GrpoOptions& o) {
  std::filesystem::create_directories(o.out_dir);
  GrpoRun run;
  run.ck_path = o.out_dir + "/checkpoint.bin";
  run.metrics_path = o.out_dir + "/metrics.jsonl";
  run.model_path = o.out_dir + "/model.gguf";
  const GgufFile file = read_gguf(o.model);
  run.policy = std::make_unique<TrainModel>(import_gguf(file, o.lora.enabled()));  // LoRA: the base stays as stored
  run.tokenizer = Tokenizer::from_gguf(file);
  run.tokenizer_meta = tokenizer_metadata(file);
  if (o.lora.enabled()) {
    run.lora.emplace(run.policy->config, o.lora);
    init_lora(*run.lora, o.seed);
  } else if (o.beta > 0) {
    run.reference.emplace(*run.policy);  // the starting model, before any resume
  }
  run.rewards = parse_reward_spec(o.rewards, o.max_completion_length, o.max_completion_length / 4);
  run.prompts.task = o.task;
  run.prompts.format = item_format_of(file);
  run.prompts.task.split = Split::Train;
  if (!o.data_path.empty()) run.prompts.data = read_rl_dataset(o.data_path);
  if (!o.data_path.empty() && run.prompts.data.empty()) throw FormatError(o.data_path + ": no examples");
  run.schedule = {.lr = o.adamw.lr, .min_lr = o.adamw.lr * o.min_lr_ratio, .warmup_steps = o.warmup, .total_steps = o.steps};
  if (o.resume) resume_from_checkpoint(run, o);
  else if (dist().root()) std::ofstream(run.metrics_path, std::ios::trunc);
  check_memory(run, o);
  if (run.lora) {
    run.engine = load_model(o.model);
    attach_lora(*run.engine, *run.lora);
  } else {
    run.engine = inference_model(*run.policy, run.tokenizer);
  }
  return run;
}

// Every rank's rollouts of a generation batch, in group order (each rank rolled out a contiguous
// share of the groups, my_groups).
std::vector<Rollout> gather_rollouts(std::vector<Rollout> mine) {
  if (dist().size == 1) return mine;
  std::vector<Rollout> all;
  for (const std::string& bytes : dist_allgather(pack_rollouts(mine))) unpack_rollouts(bytes, all);
  return all;
}

// Rollout and score: generation batches of prompts_per_step groups until the step holds
// prompts_per_step usable groups (one batch without dynamic sampling), then their advantages.
// Under mpirun each rank rolls out and scores its share of a batch's groups, then every rank
// gathers all of them and makes the same choices (dynamic sampling, advantages, metrics).
std::vector<Rollout> rollout_and_score(GrpoRun& run, const GrpoOptions& o, int64_t step, GrpoStepStats& st) {
  const auto t0 = Clock::now();
  const double comm0 = dist_counters().seconds;
  std::vector<Rollout> kept, generated;
  const size_t want = size_t(o.prompts_per_step) * size_t(o.num_generations);
  for (int batch = 0; batch < o.max_num_gen_batches && kept.size() < want; ++batch) {
    std::vector<TaskItem> items;
    for (int p = 0; p < o.prompts_per_step; ++p) items.push_back(run.prompts.at(run.next_prompt + p));
    run.next_prompt += o.prompts_per_step;
    const auto [first, last] = my_groups(items.size());
    std::vector<Rollout> mine = generate_rollouts(*run.engine, items, o, rollout_seed(o.seed, step, batch), first, last);
    score_rollouts(mine, items, run.rewards);
    std::vector<Rollout> rollouts = gather_rollouts(std::move(mine));
    st.groups_generated += o.prompts_per_step;
    for (const Rollout& r : rollouts) generated.push_back({.completion = r.completion, .reward = r.reward,
                                                          .accuracy = r.accuracy, .format = r.format});
    keep_groups(rollouts, o, kept);
    if (!o.dynamic_sampling) break;
  }
  rollout_stats(generated, st);
  st.groups_used = int(kept.size()) / o.num_generations;
  st.skipped = kept.empty();
  const double comm = dist_counters().seconds - comm0;
  st.comm_seconds += comm;
  st.rollout_seconds = since(t0) - comm;
  double tokens = 0;
  for (const Rollout& r : generated) tokens += double(r.completion.size());
  st.rollout_tokens_per_s = tokens / std::max(1e-9, st.rollout_seconds);
  set_advantages(kept, o);
  return kept;
}

// Update: mu optimizer steps on the step's rollouts.
void update_step(GrpoRun& run, const GrpoOptions& o, std::vector<Rollout>& batch, int64_t step, GrpoStepStats& st) {
  const auto t0 = Clock::now();
  const double comm0 = dist_counters().seconds;
  st.lr = run.schedule.at(step);
  // The KL anchor: the starting model, which with LoRA is the frozen base itself.
  const TrainModel* reference = run.reference ? &*run.reference : run.lora && o.beta > 0 ? run.policy.get() : nullptr;
  const UpdateStats u = update_policy(*run.policy, reference, batch, o, run.adam, float(st.lr), run.scratch,
                                      run.lora ? &*run.lora : nullptr);
  st.loss = u.loss, st.kl = u.kl, st.clip_fraction = u.clip_fraction, st.grad_norm = u.grad_norm;
  st.rollout_vs_train_logp = u.rollout_vs_train_logp;
  const double comm = dist_counters().seconds - comm0;
  st.comm_seconds += comm;
  st.train_seconds = since(t0) - comm;
}

void log_step(GrpoRun& run, const GrpoStepStats& st, std::optional<Progress>& progress) {
  run.result.steps.push_back(st);
  if (!dist().root()) return;
  append_jsonl(run.metrics_path,
               {{"step", st.step}, {"reward_mean", st.reward_mean}, {"reward_std", st.reward_std},
                {"accuracy", st.accuracy}, {"format_rate", st.format_rate}, {"completion_length", st.completion_length},
                {"loss", st.loss}, {"kl", st.kl}, {"clip_fraction", st.clip_fraction}, {"grad_norm", st.grad_norm},
                {"lr", st.lr}, {"rollout_seconds", st.rollout_seconds}, {"train_seconds", st.train_seconds},
                {"rollout_tokens_per_s", st.rollout_tokens_per_s}, {"groups_generated", st.groups_generated},
                {"groups_used", st.groups_used}, {"skipped", st.skipped},
                {"rollout_vs_train_logp", st.rollout_vs_train_logp}, {"comm_seconds", st.comm_seconds},
                {"comm_bytes", st.comm_bytes}});
  if (!progress) return;
  char status[160];
  if (st.skipped)
    std::snprintf(status, sizeof status, "reward %.3f acc %.2f; update skipped: all %d groups had equal rewards",
                  st.reward_mean, st.accuracy, st.groups_generated);
  else
    std::snprintf(status, sizeof status, "reward %.3f acc %.2f fmt %.2f len %.0f groups %d/%d", st.reward_mean,
                  st.accuracy, st.format_rate, st.completion_length, st.groups_used, st.groups_generated);
  progress->update(st.step, status);
}

void save_checkpoint(const GrpoRun& run, const GrpoOptions& o, int64_t step) {
  if (!dist().root()) return;
  write_checkpoint(run.ck_path, {.kind = "grpo", .config = run.policy->config, .lora = o.lora,
                                 .params = run.lora ? run.lora->params : run.policy->params,
                                 .adam = run.adam, .step = step, .run_options = o.to_json(),
                                 .extra = {{"next_prompt", std::to_string(run.next_prompt)}},
                                 .tokenizer = gguf_metadata_bytes(run.tokenizer_meta)});
}

// The caller's held-out score of the current weights, recorded in the metrics.
void evaluate_held_out(GrpoRun& run, const Evaluator& evaluate, int64_t step) {
  if (!evaluate || !dist().root()) return;
  const HeldOutScore s = evaluate(*run.engine, run.prompts.format);
  run.result.eval_accuracy = s.accuracy;
  run.result.eval_format = s.format_rate;
  append_jsonl(run.metrics_path, {{"step", step}, {"eval_accuracy", s.accuracy}, {"eval_format", s.format_rate},
                                  {"eval_mean_tokens", s.mean_tokens}});
}

}  // namespace

void GrpoOptions::validate() const {
  auto fail = [](const std::string& m) { throw InvalidArgument(m); };
  auto range = [&](bool ok, const std::string& flag, const std::string& allowed, const std::string& got) {
    if (!ok) fail(flag + " must be " + allowed + ", got " + got);
  };
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  if (task.name.empty() == data_path.empty()) fail("give exactly one of --task NAME or --data FILE");
  if (model.empty()) fail("--model FILE is required (the policy to start from, e.g. the SFT model)");
  range(lora.rank >= 0, "--lora-rank", ">= 0", std::to_string(lora.rank));
  if (!task.name.empty()) validate_task_options(task);
  range(steps >= 1, "--steps", ">= 1", std::to_string(steps));
  range(prompts_per_step >= 1 && prompts_per_step <= 4096, "--prompts-per-step", "in [1, 4096]", std::to_string(prompts_per_step));
  // Advantages compare the completions of a prompt: at least 2; the references use 8 to 64.
  range(num_generations >= 2 && num_generations <= 1024, "--num-generations", "in [2, 1024]", std::to_string(num_generations));
  range(temperature > 0 && temperature < INFINITY, "--temperature", "finite and > 0 for rollouts", num(temperature));
  range(top_p > 0 && top_p <= 1, "--top-p", "in (0, 1] (1: off)", num(top_p));
  range(top_k >= 0, "--top-k", ">= 0 (0: off)", std::to_string(top_k));
  range(max_completion_length >= 1, "--max-completion-length", ">= 1", std::to_string(max_completion_length));
  range(beta >= 0 && beta < INFINITY, "--beta", "finite and >= 0", num(beta));
  range(epsilon >= 0 && epsilon < 1, "--epsilon", "in [0, 1)", num(epsilon));
  range(epsilon_high >= 0 && epsilon_high < INFINITY, "--epsilon-high", "finite and >= 0", num(epsilon_high));
  range(num_iterations >= 1 && num_iterations <= 64, "--num-iterations", "in [1, 64]", std::to_string(num_iterations));
  range(max_num_gen_batches >= 1, "--max-num-gen-batches", ">= 1", std::to_string(max_num_gen_batches));
  range(micro_batch >= 1, "--micro-batch", ">= 1", std::to_string(micro_batch));
  range(warmup >= 0, "--warmup", ">= 0", std::to_string(warmup));
  range(min_lr_ratio >= 0 && min_lr_ratio <= 1, "--min-lr-ratio", "in [0, 1]", num(min_lr_ratio));
  range(eval_every >= 0, "--eval-every", ">= 0", std::to_string(eval_every));
  range(save_every >= 0, "--save-every", ">= 0", std::to_string(save_every));
  validate_reward_spec(parse_reward_spec(rewards, max_completion_length, max_completion_length / 4));
  adamw.validate();
}

std::string GrpoOptions::to_json() const {
  // Keys are the flags' names, so a --resume mismatch names the flag that differs.
  const char* loss_names[] = {"grpo", "bnpo", "dr_grpo", "dapo"};
  const char* scale_names[] = {"group", "batch", "none"};
  nlohmann::json j{{"kind", "grpo"}, {"task", task.name},
                        {"difficulty", task.name.empty() ? task.difficulty : task_difficulty(task)},
                        {"task_seed", task.seed}, {"prompt_template", task.prompt_template == PromptTemplate::Compact ? "compact" : "r1zero"},
                        {"data", data_path}, {"model", model}, {"steps", steps}, {"prompts_per_step", prompts_per_step},
                        {"num_generations", num_generations}, {"temperature", temperature}, {"top_p", top_p},
                        {"top_k", top_k}, {"max_completion_length", max_completion_length}, {"beta", beta},
                        {"epsilon", epsilon}, {"epsilon_high", epsilon_high}, {"num_iterations", num_iterations},
                        {"loss_type", loss_names[int(loss_type)]}, {"scale_rewards", scale_names[int(scale_rewards)]},
                        {"mask_truncated_completions", mask_truncated_completions}, {"dynamic_sampling", dynamic_sampling},
                        {"max_num_gen_batches", max_num_gen_batches}, {"rewards", rewards}, {"micro_batch", micro_batch},
                        {"lr", adamw.lr}, {"beta1", adamw.beta1}, {"beta2", adamw.beta2}, {"eps", adamw.eps},
                        {"weight_decay", adamw.weight_decay}, {"max_grad_norm", adamw.max_grad_norm},
                        {"warmup", warmup}, {"min_lr_ratio", min_lr_ratio}, {"seed", seed}};
  j.update(lora_run_options(lora));
  return j.dump();
}

GrpoResult run_grpo(const GrpoOptions& o, const Evaluator& evaluate) {
  o.validate();
  check_ranks(o);
  GrpoRun run = start_run(o);
  std::optional<Progress> progress;
  if (!o.quiet && dist().root()) progress.emplace("grpo", o.steps, run.start);
  for (int64_t step = run.start; step < o.steps; ++step) {
    GrpoStepStats st{.step = step + 1};
    const double bytes0 = dist_counters().bytes;
    std::vector<Rollout> batch = rollout_and_score(run, o, step, st);
    if (!st.skipped) update_step(run, o, batch, step, st);
    st.comm_bytes = dist_counters().bytes - bytes0;
    log_step(run, st, progress);
    if (every(o.save_every, step) || step + 1 == o.steps) save_checkpoint(run, o, step + 1);
    if (every(o.eval_every, step) && step + 1 < o.steps) evaluate_held_out(run, evaluate, step + 1);
    if (o.stop_after > 0 && step + 1 - run.start >= o.stop_after) return run.result;  // as if killed (tests)
  }
  if (progress) progress->finish();
  if (dist().root())
    export_gguf(run.lora ? merged_model(*run.policy, *run.lora) : *run.policy, run.tokenizer_meta, run.model_path);
  run.result.model_path = run.model_path;
  if (run.lora) {
    run.result.lora_path = o.out_dir + "/lora.gguf";
    if (dist().root()) export_lora_gguf(*run.lora, run.policy->config, run.result.lora_path);
  }
  evaluate_held_out(run, evaluate, o.steps);
  double roll = 0, train = 0;
  for (const GrpoStepStats& s : run.result.steps) roll += s.rollout_seconds, train += s.train_seconds;
  run.result.rollout_share = roll / std::max(1e-9, roll + train);
  return run.result;
}

}  // namespace ponder
