#include "train/sft.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/progress.h"
#include "core/rng.h"
#include "eval/evaluate.h"
#include "eval/plot.h"
#include "model/model.h"
#include "tasks/dataset.h"
#include "train/char_vocab.h"
#include "train/checkpoint.h"
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

  std::pair<std::string, std::string> at(int64_t k) const {
    if (data.empty()) {
      const TaskItem item = generate_item(task, k);
      return {item.prompt, sft_completion(item)};
    }
    // A fresh permutation of the file for every epoch.
    const int64_t n = int64_t(data.size()), epoch = k / n;
    std::vector<int64_t> order(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
    Rng rng = Rng::derive(seed, uint64_t(epoch));
    for (int64_t i = n - 1; i > 0; --i) std::swap(order[size_t(i)], order[rng.below(uint64_t(i + 1))]);
    const SftExample& e = data[size_t(order[size_t(k % n)])];
    return {e.prompt, e.completion};
  }
};

struct Setup {
  std::unique_ptr<TrainModel> model;
  Tokenizer tokenizer;
  std::vector<std::pair<std::string, GgufValue>> tokenizer_meta;
};

Setup make_model(const SftOptions& o) {
  Setup s;
  if (!o.init_model.empty()) {
    const GgufFile f = read_gguf(o.init_model);
    s.model = std::make_unique<TrainModel>(import_gguf(f));
    s.tokenizer = Tokenizer::from_gguf(f);
    s.tokenizer_meta = tokenizer_metadata(f);
  } else {
    s.tokenizer_meta = char_vocab_metadata();
    s.tokenizer = char_tokenizer();
    TrainConfig c = find_train_preset(o.preset).config;
    c.vocab = s.tokenizer.n_vocab();
    s.model = std::make_unique<TrainModel>(c);
    init_params(*s.model, o.seed);
  }
  return s;
}

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  std::ofstream f(path, std::ios::app);
  f << j.dump() << "\n";
}

// Keeps the metrics lines of steps <= last_step (a resumed run rewrites what came after).
void truncate_metrics(const std::string& path, int64_t last_step) {
  std::ifstream in(path);
  std::vector<std::string> keep;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("step", int64_t(0)) <= last_step) keep.push_back(line);
  }
  in.close();
  std::ofstream out(path, std::ios::trunc);
  for (const std::string& l : keep) out << l << "\n";
}

}  // namespace

void SftOptions::validate() const {
  auto fail = [](const std::string& m) { throw InvalidArgument(m); };
  if (task.name.empty() == data_path.empty()) fail("give exactly one of --task NAME or --data FILE");
  if (preset.empty() == init_model.empty()) fail("give exactly one of --preset NAME or --model FILE");
  if (!task.name.empty()) validate_task_options(task);
  if (!preset.empty()) find_train_preset(preset);
  if (steps < 1) fail("--steps must be >= 1, got " + std::to_string(steps));
  if (batch_size < 1) fail("--batch must be >= 1, got " + std::to_string(batch_size));
  if (grad_accum < 1) fail("--accum must be >= 1, got " + std::to_string(grad_accum));
  if (max_len < 8) fail("--max-len must be >= 8, got " + std::to_string(max_len));
  if (warmup < 0) fail("--warmup must be >= 0");
  if (!(min_lr_ratio >= 0 && min_lr_ratio <= 1)) fail("--min-lr-ratio must be in [0, 1]");
  if (eval_count < 0 || eval_every < 0 || save_every < 0) fail("--eval-count, --eval-every and --save-every must be >= 0");
  adamw.validate();
}

std::string SftOptions::to_json() const {
  const nlohmann::json j = {{"kind", "sft"}, {"task", task.name}, {"difficulty", task.difficulty},
                            {"task_seed", task.seed}, {"data", data_path}, {"preset", preset}, {"model", init_model},
                            {"steps", steps}, {"batch", batch_size}, {"accum", grad_accum}, {"max_len", max_len},
                            {"lr", adamw.lr}, {"beta1", adamw.beta1}, {"beta2", adamw.beta2}, {"eps", adamw.eps},
                            {"weight_decay", adamw.weight_decay}, {"max_grad_norm", adamw.max_grad_norm},
                            {"warmup", warmup}, {"min_lr_ratio", min_lr_ratio}, {"seed", seed}};
  return j.dump();
}

SftSequence tokenize_sft(const Tokenizer& tok, const std::string& prompt, const std::string& completion, int max_len) {
  SftSequence s;
  s.tokens = tok.encode(prompt, true, false);
  const size_t n_prompt = s.tokens.size();
  const auto comp = tok.encode(completion, false, false);
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

SftResult run_sft(const SftOptions& o) {
  o.validate();
  std::filesystem::create_directories(o.out_dir);
  const std::string ck_path = o.out_dir + "/checkpoint.bin", metrics = o.out_dir + "/metrics.jsonl";
  Setup s = make_model(o);
  TrainModel& m = *s.model;
  ExampleSource source{.task = o.task, .data = {}, .seed = o.seed};
  source.task.split = Split::Train;
  if (!o.data_path.empty()) source.data = read_sft_dataset(o.data_path);
  if (!o.data_path.empty() && source.data.empty()) throw FormatError(o.data_path + ": no examples");

  AdamWState adam;
  int64_t start = 0;
  if (o.resume && std::filesystem::exists(ck_path)) {
    const Checkpoint ck = read_checkpoint(ck_path);
    if (ck.kind != "sft") throw FormatError(ck_path + ": a '" + ck.kind + "' checkpoint, expected an SFT one");
    if (!(ck.config == m.config))
      throw FormatError(ck_path + ": the checkpoint is from another model (its config differs from --preset/--model)");
    if (ck.run_options != o.to_json())
      throw FormatError(ck_path + ": the checkpoint was written with other options: " + ck.run_options);
    m.params = ck.params;
    adam = ck.adam;
    start = ck.step;
    truncate_metrics(metrics, start);
  } else {
    std::ofstream(metrics, std::ios::trunc);
  }
  const LrSchedule schedule{.lr = o.adamw.lr, .min_lr = o.adamw.lr * o.min_lr_ratio, .warmup_steps = o.warmup,
                            .total_steps = o.steps};
  auto save = [&](int64_t step) {
    Checkpoint ck{.kind = "sft", .config = m.config, .params = m.params, .adam = adam, .step = step,
                  .run_options = o.to_json(), .extra = {}, .tokenizer = gguf_metadata_bytes(s.tokenizer_meta)};
    write_checkpoint(ck_path, ck);
  };
  const std::string model_path = o.out_dir + "/model.gguf";
  std::vector<TaskItem> eval_items;
  if (!o.task.name.empty() && o.eval_count > 0) {
    TaskOptions t = o.task;
    t.split = Split::Test;
    eval_items = generate_items(t, o.eval_count);
  }
  SftResult result;
  auto evaluate_now = [&](int64_t step) {
    export_gguf(m, s.tokenizer_meta, model_path);
    if (eval_items.empty()) return;
    const auto model = load_model(model_path);
    const EvalResult e = evaluate(*model, eval_items, GreedyOptions{}, {.max_tokens = o.eval_max_tokens});
    result.eval_accuracy = e.accuracy;
    result.eval_format = e.format_rate;
    append_jsonl(metrics, {{"step", step}, {"eval_accuracy", e.accuracy}, {"eval_format", e.format_rate},
                           {"eval_mean_tokens", e.mean_tokens}});
  };

  Activations acts;
  std::vector<float> logp, grads;
  Progress progress("sft", o.steps);
  const auto t_start = Clock::now();
  double trained_tokens = 0;
  for (int64_t step = start; step < o.steps; ++step) {
    const auto t0 = Clock::now();
    // Every micro-batch of the step first, so the loss is the mean over all trained tokens.
    std::vector<TrainBatch> micro;
    int64_t n_targets = 0, n_tokens = 0;
    for (int a = 0; a < o.grad_accum; ++a) {
      std::vector<SftSequence> seqs;
      for (int b = 0; b < o.batch_size; ++b) {
        const int64_t k = (step * o.grad_accum + a) * o.batch_size + b;
        const auto [prompt, completion] = source.at(k);
        seqs.push_back(tokenize_sft(s.tokenizer, prompt, completion, std::min(o.max_len, m.config.ctx)));
      }
      micro.push_back(make_batch(seqs, s.tokenizer.eos()));
      for (int32_t t : micro.back().targets) n_targets += t >= 0;
      n_tokens += int64_t(micro.back().tokens.size());
    }
    grads.assign(m.params.size(), 0.0f);
    double loss = 0;
    for (const TrainBatch& b : micro) {
      const double mean = forward_train(m, b, acts, logp);
      int64_t count = 0;
      for (int32_t t : b.targets) count += t >= 0;
      loss += mean * double(count) / double(std::max<int64_t>(1, n_targets));
      std::vector<float> dlogp(logp.size());
      for (size_t i = 0; i < dlogp.size(); ++i) dlogp[i] = b.targets[i] >= 0 ? -1.0f / float(n_targets) : 0.0f;
      backward_train(m, b, acts, dlogp, grads);
    }
    const double norm = clip_grad_norm(grads, o.adamw.max_grad_norm);
    const float lr = schedule.at(step);
    adamw_step(m, grads, adam, o.adamw, lr);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    trained_tokens += double(n_tokens);
    result.losses.push_back(loss);
    append_jsonl(metrics, {{"step", step + 1}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm},
                           {"tokens_per_s", double(n_tokens) / secs}, {"trained_tokens", n_targets}});
    if (!o.quiet) {
      char status[96];
      std::snprintf(status, sizeof status, "loss %.4f lr %.2e %.0f tok/s", loss, lr, double(n_tokens) / secs);
      progress.update(step + 1 - start, status);
    }
    if (o.save_every > 0 && (step + 1) % o.save_every == 0) save(step + 1);
    if (o.eval_every > 0 && (step + 1) % o.eval_every == 0 && step + 1 < o.steps) evaluate_now(step + 1);
    if (o.stop_after > 0 && step + 1 - start >= o.stop_after) return result;  // interrupted
  }
  if (!o.quiet) progress.finish();
  save(o.steps);
  result.tokens_per_second = trained_tokens / std::max(1e-9, std::chrono::duration<double>(Clock::now() - t_start).count());
  evaluate_now(o.steps);
  result.model_path = model_path;
  const size_t tail = std::min<size_t>(10, result.losses.size());
  for (size_t i = result.losses.size() - tail; i < result.losses.size(); ++i) result.final_loss += result.losses[i] / double(tail);

  // Curves from the metrics file (the whole run, resumed or not).
  Series loss_curve{.name = "train loss"}, acc{.name = "eval accuracy"};
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j.contains("loss")) loss_curve.x.push_back(j["step"]), loss_curve.y.push_back(j["loss"]);
    if (j.contains("eval_accuracy")) acc.x.push_back(j["step"]), acc.y.push_back(j["eval_accuracy"]);
  }
  write_svg_chart(o.out_dir + "/sft_loss.svg", "SFT loss", "step", {loss_curve});
  if (!acc.x.empty()) write_svg_chart(o.out_dir + "/sft_eval.svg", "held-out greedy accuracy", "step", {acc});
  return result;
}

}  // namespace ponder
