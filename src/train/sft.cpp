#include "train/sft.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "decode/item_format.h"
#include "model/model.h"
#include "tasks/dataset.h"
#include "train/char_vocab.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/memory.h"
#include "train/model_io.h"

namespace ponder {

namespace {

using Clock = std::chrono::steady_clock;

// Where the examples come from: item k of the stream, a pure function of (options, k), so a
// resumed run sees exactly the examples the uninterrupted one would have.
struct ExampleSource {
  TaskOptions task;
  std::vector<SftExample> data;  // from a file
  uint64_t seed = 0;
  ItemFormat format;             // the model's (compact for ponder's presets)

  std::pair<std::string, std::string> at(int64_t k) const {
    if (data.empty()) {
      const TaskItem item = generate_item(task, k);
      return {format.apply(item).prompt, format.completion(item)};
    }
    // A fresh permutation of the file for every epoch.
    const int64_t n = int64_t(data.size()), epoch = k / n;
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    Rng rng = Rng::derive(seed, uint64_t(epoch));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
    return format.example(data[size_t(order[size_t(k % n)])]);
  }
};

// Everything the loop reads and writes.
struct SftRun {
  std::unique_ptr<TrainModel> model;
  Tokenizer tokenizer;
  std::vector<std::pair<std::string, GgufValue>> tokenizer_meta;
  ItemFormat format;
  std::optional<LoraAdapters> lora;  // with --lora-rank: what is trained; the model is frozen
  ExampleSource source;
  AdamWState adam;
  LrSchedule schedule;
  int64_t start = 0;  // the first step of this run (the checkpoint's step when resuming)
  std::string ck_path, metrics_path, model_path;
  Activations acts;
  std::vector<float> logp, dlogp, grads;
  double trained_tokens = 0;
  SftResult result;
};

struct StepStats {
  double loss = 0, grad_norm = 0, seconds = 0;
  double comm_seconds = 0, comm_bytes = 0;  // in collectives (data-parallel runs, train/dist.h)
  float lr = 0;
  int64_t n_targets = 0, n_tokens = 0;
};

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path, std::ios::app);
  f << j.dump() << "\n";
}


void make_model(SftRun& run, const SftOptions& o) {
  if (!o.init_model.empty()) {
    const GgufFile f = read_gguf(o.init_model);
    run.model = std::make_unique<TrainModel>(import_gguf(f, o.lora.enabled()));  // LoRA: the base stays as stored
    run.tokenizer = Tokenizer::from_gguf(f);
    run.tokenizer_meta = tokenizer_metadata(f);
    run.format = item_format_of(f);
  } else {
    run.tokenizer_meta = char_vocab_metadata();
    run.tokenizer = char_tokenizer();
    TrainConfig c = find_train_preset(o.preset).config;
    c.vocab = run.tokenizer.n_vocab();
    run.model = std::make_unique<TrainModel>(c);
    init_params(*run.model, o.seed);
  }
}

// Before anything of the step is allocated: the activations of one micro-batch, the optimizer,
// and the token ids of the step's micro-batches.
// With several micro-batches (or ranks) a micro-batch's gradient has a buffer of its own
// (train/dist.h); the ranks on one machine share its memory.
void check_memory(const SftOptions& o, const TrainModel& m) {
  const TrainConfig& c = m.config;
  const int64_t tokens = std::min(o.max_len, c.ctx);
  TrainStepMemory need = training_step_memory(c, o.batch_size, tokens, o.lora, m.frozen ? double(m.frozen->bytes()) : -1);
  need.other = double(o.grad_accum) * double(o.batch_size) * double(tokens) * 2 * sizeof(int32_t);
  need.other += GradientSum::extra_bytes(need.grads, o.grad_accum);
  check_training_memory(need, "--batch " + std::to_string(o.batch_size) + ", --accum " + std::to_string(o.grad_accum) +
                                  " and --max-len " + std::to_string(o.max_len) + " (" + std::to_string(tokens) +
                                  " tokens per row)");
}

// The checkpoint of an earlier run with the same options and model (--resume).
void resume_from_checkpoint(SftRun& run, const SftOptions& o) {
  const Checkpoint ck = read_checkpoint_for_resume(run.ck_path, "sft", run.model->config, "--preset/--model", o.to_json());
  if (!(ck.lora == o.lora) && (ck.lora.enabled() || o.lora.enabled()))
    throw FormatError(run.ck_path + ": LoRA rank " + std::to_string(ck.lora.rank) + " in the checkpoint, " +
                      std::to_string(o.lora.rank) + " now");
  (run.lora ? run.lora->params : run.model->params) = ck.params;
  run.adam = ck.adam;
  run.start = ck.step;
  run.result.resumed_from = ck.step;
  if (dist().root()) truncate_metrics(run.metrics_path, run.start);
}

SftRun start_run(const SftOptions& o) {
  std::filesystem::create_directories(o.out_dir);
  SftRun run;
  run.ck_path = o.out_dir + "/checkpoint.bin";
  run.metrics_path = o.out_dir + "/metrics.jsonl";
  run.model_path = o.out_dir + "/model.gguf";
  make_model(run, o);
  check_memory(o, *run.model);
  if (o.lora.enabled()) {
    run.lora.emplace(run.model->config, o.lora);
    init_lora(*run.lora, o.seed);
  }
  run.source = {.task = o.task, .data = {}, .seed = o.seed, .format = run.format};
  run.source.task.split = Split::Train;
  if (!o.data_path.empty()) run.source.data = read_sft_dataset(o.data_path);
  if (!o.data_path.empty() && run.source.data.empty()) throw FormatError(o.data_path + ": no examples");
  run.schedule = {.lr = o.adamw.lr, .min_lr = o.adamw.lr * o.min_lr_ratio, .warmup_steps = o.warmup, .total_steps = o.steps};
  if (o.resume) resume_from_checkpoint(run, o);
  else if (dist().root()) std::ofstream(run.metrics_path, std::ios::trunc);
  return run;
}

// The step's micro-batches: examples (step * accum + a) * batch + b of the stream.
std::vector<TrainBatch> next_batches(const SftRun& run, const SftOptions& o, int64_t step) {
  std::vector<TrainBatch> micro;
  for (int a = 0; a < o.grad_accum; ++a) {
    std::vector<SftSequence> seqs;
    for (int b = 0; b < o.batch_size; ++b) {
      const int64_t k = (step * o.grad_accum + a) * o.batch_size + b;
      const auto [prompt, completion] = run.source.at(k);
      seqs.push_back(tokenize_sft(run.tokenizer, prompt, completion, std::min(o.max_len, run.model->config.ctx)));
    }
    micro.push_back(make_batch(seqs, run.tokenizer.eos()));
  }
  return micro;
}

int64_t count_targets(const TrainBatch& b) {
  int64_t n = 0;
  for (int32_t t : b.targets) n += t >= 0;
  return n;
}

// Forward and backward over every micro-batch (the loss: the mean over all the step's trained
// tokens), clipping, one AdamW update. Under mpirun each rank computes its micro-batches and the
// gradients are summed in micro-batch order (train/dist.h), so every rank applies the update one
// process would.
StepStats train_step(SftRun& run, const SftOptions& o, const std::vector<TrainBatch>& micro, int64_t step) {
  const auto t0 = Clock::now();
  const DistCounters c0 = dist_counters();
  TrainModel& m = *run.model;
  const LoraAdapters* lora = run.lora ? &*run.lora : nullptr;
  StepStats st;
  for (const TrainBatch& b : micro) st.n_targets += count_targets(b), st.n_tokens += int64_t(b.tokens.size());
  const double denom = double(std::max<int64_t>(1, st.n_targets));
  std::vector<double> loss_parts(micro.size(), 0.0);  // each micro-batch's share of the step's loss
  GradientSum sum(run.grads, lora ? lora->params.size() : m.params.size(), int64_t(micro.size()));
  for (int64_t round = 0; round < sum.rounds(); ++round) {
    if (const int64_t a = sum.micro(round); a >= 0) {
      const TrainBatch& b = micro[size_t(a)];
      const double mean = forward_train(m, b, run.acts, run.logp, 1.0f, lora);
      loss_parts[size_t(a)] = mean * double(count_targets(b)) / denom;
      run.dlogp.resize(run.logp.size());
      for (size_t i = 0; i < run.dlogp.size(); ++i) run.dlogp[i] = b.targets[i] >= 0 ? -1.0f / float(st.n_targets) : 0.0f;
      backward_train(m, b, run.acts, run.dlogp, sum.buffer(round), lora);
    }
    sum.reduce(round);
  }
  sum.finish();
  dist_collect(loss_parts);
  for (double part : loss_parts) st.loss += part;
  st.grad_norm = grad_norm(run.grads);
  st.lr = run.schedule.at(step);
  const double clip = clip_coefficient(st.grad_norm, o.adamw.max_grad_norm);
  if (run.lora) adamw_step(run.lora->layout, run.lora->params, run.grads, run.adam, o.adamw, st.lr, clip);
  else adamw_step(m, run.grads, run.adam, o.adamw, st.lr, clip);
  st.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  st.comm_seconds = dist_counters().seconds - c0.seconds;
  st.comm_bytes = dist_counters().bytes - c0.bytes;
  return st;
}

void log_step(SftRun& run, int64_t step, const StepStats& st, std::optional<Progress>& progress) {
  run.trained_tokens += double(st.n_tokens);
  run.result.losses.push_back(st.loss);
  const double tok_s = double(st.n_tokens) / std::max(1e-9, st.seconds);
  if (!dist().root()) return;
  append_jsonl(run.metrics_path, {{"step", step + 1}, {"loss", st.loss}, {"lr", st.lr}, {"grad_norm", st.grad_norm},
                                  {"tokens_per_s", tok_s}, {"trained_tokens", st.n_targets},
                                  {"step_seconds", st.seconds}, {"comm_seconds", st.comm_seconds},
                                  {"comm_bytes", st.comm_bytes}});
  if (!progress) return;
  char status[96];
  std::snprintf(status, sizeof status, "loss %.4f lr %.2e %.0f tok/s", st.loss, double(st.lr), tok_s);
  progress->update(step + 1, status);
}

void save_checkpoint(const SftRun& run, const SftOptions& o, int64_t step) {
  if (!dist().root()) return;
  write_checkpoint(run.ck_path, {.kind = "sft", .config = run.model->config, .lora = o.lora,
                                 .params = run.lora ? run.lora->params : run.model->params, .adam = run.adam,
                                 .step = step, .run_options = o.to_json(), .extra = {},
                                 .tokenizer = gguf_metadata_bytes(run.tokenizer_meta)});
}

// The caller's held-out score of the current weights (the engine reads them in place).
void evaluate_held_out(SftRun& run, const Evaluator& evaluate, int64_t step, const SftOptions& o) {
  if (!evaluate || !dist().root()) return;
  // With LoRA the engine runs the base file with the adapters as they are (not merged).
  std::unique_ptr<Model> model;
  if (run.lora) {
    model = load_model(o.init_model);
    attach_lora(*model, *run.lora);
  } else {
    model = inference_model(*run.model, run.tokenizer);
  }
  const HeldOutScore score = evaluate(*model, run.format);
  run.result.eval_accuracy = score.accuracy;
  run.result.eval_format = score.format_rate;
  append_jsonl(run.metrics_path, {{"step", step}, {"eval_accuracy", score.accuracy},
                                  {"eval_format", score.format_rate}, {"eval_mean_tokens", score.mean_tokens}});
}

bool every(int n, int64_t step) { return n > 0 && (step + 1) % n == 0; }

// Under mpirun -np R each rank trains whole micro-batches: a step needs at least R of them.
void check_ranks(const SftOptions& o) {
  const int R = dist().size;
  if (o.grad_accum < R)
    throw InvalidArgument("--accum " + std::to_string(o.grad_accum) + " gives " + std::to_string(o.grad_accum) +
                          " micro-batch(es) per step, fewer than the " + std::to_string(R) +
                          " MPI ranks (each rank trains whole micro-batches): use --accum " + std::to_string(R) +
                          " or a multiple of it");
}

}  // namespace

void SftOptions::validate() const {
  auto fail = [](const std::string& m) { throw InvalidArgument(m); };
  if (task.name.empty() == data_path.empty()) fail("give exactly one of --task NAME or --data FILE");
  if (preset.empty() == init_model.empty()) fail("give exactly one of --preset NAME or --model FILE");
  if (!task.name.empty()) validate_task_options(task);
  if (!preset.empty()) find_train_preset(preset);
  if (lora.rank < 0) fail("--lora-rank must be >= 0, got " + std::to_string(lora.rank));
  if (lora.enabled() && init_model.empty()) fail("--lora-rank adapts a model: give --model FILE");
  if (steps < 1) fail("--steps must be >= 1, got " + std::to_string(steps));
  if (batch_size < 1) fail("--batch must be >= 1, got " + std::to_string(batch_size));
  if (grad_accum < 1) fail("--accum must be >= 1, got " + std::to_string(grad_accum));
  if (max_len < 8) fail("--max-len must be >= 8, got " + std::to_string(max_len));
  if (warmup < 0) fail("--warmup must be >= 0");
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1)) fail("--min-lr-ratio must be in [0, 1]");
  if (eval_every < 0 || save_every < 0) fail("--eval-every and --save-every must be >= 0");
  adamw.validate();
}

std::string SftOptions::to_json() const {
  nlohmann::json j = {{"kind", "sft"}, {"task", task.name},
                            {"difficulty", task.name.empty() ? task.difficulty : task_difficulty(task)},
                            {"task_seed", task.seed}, {"data", data_path}, {"preset", preset}, {"model", init_model},
                            {"steps", steps}, {"batch", batch_size}, {"accum", grad_accum}, {"max_len", max_len},
                            {"lr", adamw.lr}, {"beta1", adamw.beta1}, {"beta2", adamw.beta2}, {"eps", adamw.eps},
                            {"weight_decay", adamw.weight_decay}, {"max_grad_norm", adamw.max_grad_norm},
                            {"warmup", warmup}, {"min_lr_ratio", min_lr_ratio}, {"seed", seed}};
  j.update(lora_run_options(lora));
  return j.dump();
}

SftSequence tokenize_sft(const Tokenizer& tok, const std::string& prompt, const std::string& completion, int max_len) {
  SftSequence s;
  s.tokens = tok.encode(prompt, true, true);
  const size_t n_prompt = s.tokens.size();
  const auto comp = tok.encode(completion, false, true);
  s.tokens.insert(s.tokens.end(), comp.begin(), comp.end());
  s.tokens.push_back(tok.eos());
  if (s.tokens.size() > size_t(max_len) + 1) s.tokens.resize(size_t(max_len) + 1);
  // Input positions 0..n-2 predict tokens 1..n-1; only completion tokens are targets.
  s.targets.assign(s.tokens.size() - 1, -1);
  for (size_t t = 0; t + 1 < s.tokens.size(); ++t)
    if (t + 1 >= n_prompt) s.targets[t] = s.tokens[t + 1];
  s.tokens.pop_back();
  return s;
}

TrainBatch make_batch(const std::vector<SftSequence>& seqs, int32_t pad) {
  TrainBatch b{.B = int(seqs.size()), .T = 1};
  for (const SftSequence& s : seqs) b.T = std::max(b.T, int(s.tokens.size()));
  b.tokens.assign(size_t(b.B) * size_t(b.T), pad);
  b.targets.assign(size_t(b.B) * size_t(b.T), -1);
  for (size_t i = 0; i < seqs.size(); ++i) {
    std::copy(seqs[i].tokens.begin(), seqs[i].tokens.end(), b.tokens.begin() + ptrdiff_t(i * size_t(b.T)));
    std::copy(seqs[i].targets.begin(), seqs[i].targets.end(), b.targets.begin() + ptrdiff_t(i * size_t(b.T)));
  }
  return b;
}

SftResult run_sft(const SftOptions& o, const Evaluator& evaluate) {
  o.validate();
  check_ranks(o);
  SftRun run = start_run(o);
  std::optional<Progress> progress;
  if (!o.quiet && dist().root()) progress.emplace("sft", o.steps, run.start);
  const auto t_start = Clock::now();
  for (int64_t step = run.start; step < o.steps; ++step) {
    const std::vector<TrainBatch> micro = next_batches(run, o, step);
    const StepStats st = train_step(run, o, micro, step);
    log_step(run, step, st, progress);
    if (every(o.save_every, step)) save_checkpoint(run, o, step + 1);
    if (every(o.eval_every, step) && step + 1 < o.steps) evaluate_held_out(run, evaluate, step + 1, o);
    if (o.stop_after > 0 && step + 1 - run.start >= o.stop_after) return run.result;  // as if killed (tests)
  }
  if (progress) progress->finish();
  save_checkpoint(run, o, o.steps);
  const double seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  run.result.tokens_per_second = run.trained_tokens / std::max(1e-9, seconds);
  if (dist().root()) export_gguf(run.lora ? merged_model(*run.model, *run.lora) : *run.model, run.tokenizer_meta, run.model_path);
  if (run.lora) {
    run.result.lora_path = o.out_dir + "/lora.gguf";
    if (dist().root()) export_lora_gguf(*run.lora, run.model->config, run.result.lora_path);
  }
  run.result.model_path = run.model_path;
  evaluate_held_out(run, evaluate, o.steps, o);
  const std::vector<double>& losses = run.result.losses;
  const size_t tail = std::min<size_t>(10, losses.size());
  for (size_t i = losses.size() - tail; i < losses.size(); ++i) run.result.final_loss += losses[i] / double(tail);
  return run.result;
}

}  // namespace ponder
