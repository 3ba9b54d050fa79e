#include "train/grpo.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/progress.h"
#include "decode/model_runner.h"
#include "decode/paths.h"
#include "eval/evaluate.h"
#include "eval/plot.h"
#include "tasks/dataset.h"
#include "train/checkpoint.h"
#include "train/forward_train.h"
#include "train/model_io.h"

namespace ponder {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// One completion as training sees it.
struct Rollout {
  std::vector<int32_t> prompt, completion;  // completion: generated ids (EOS included when hit)
  std::vector<float> rollout_logp;          // the engine's log-probs
  float reward = 0, advantage = 0;
  bool truncated = false;
  int group = 0;
};

// The training batch of a micro-batch of rollouts: prompt + completion, targets on the completion.
TrainBatch rollout_batch(const std::vector<const Rollout*>& rs, int32_t pad) {
  TrainBatch b{.B = int(rs.size()), .T = 1};
  for (const Rollout* r : rs) b.T = std::max(b.T, int(r->prompt.size() + r->completion.size()) - 1);
  b.tokens.assign(size_t(b.B) * size_t(b.T), pad);
  b.targets.assign(b.tokens.size(), -1);
  for (size_t i = 0; i < rs.size(); ++i) {
    std::vector<int32_t> seq = rs[i]->prompt;
    seq.insert(seq.end(), rs[i]->completion.begin(), rs[i]->completion.end());
    for (size_t t = 0; t + 1 < seq.size(); ++t) {
      b.tokens[i * size_t(b.T) + t] = seq[t];
      if (t + 1 >= rs[i]->prompt.size()) b.targets[i * size_t(b.T) + t] = seq[t + 1];
    }
  }
  return b;
}

// The completion-token log-probs of sequence i out of a forward's per-position logp.
std::vector<float> completion_logp(const std::vector<float>& logp, const TrainBatch& b, size_t i, const Rollout& r) {
  const size_t first = r.prompt.size() - 1;
  return std::vector<float>(logp.begin() + ptrdiff_t(i * size_t(b.T) + first),
                            logp.begin() + ptrdiff_t(i * size_t(b.T) + first + r.completion.size()));
}

void append_jsonl(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path, std::ios::app) << j.dump() << "\n";
}

}  // namespace

void GrpoOptions::validate() const {
  auto fail = [](const std::string& m) { throw InvalidArgument(m); };
  if (task.name.empty() == data_path.empty()) fail("give exactly one of --task NAME or --data FILE");
  if (model.empty()) fail("--model FILE is required (the policy to start from, e.g. the SFT model)");
  if (!task.name.empty()) validate_task_options(task);
  if (steps < 1 || prompts_per_step < 1) fail("--steps and --prompts-per-step must be >= 1");
  if (num_generations < 2) fail("--num-generations must be >= 2 (advantages compare completions of a prompt), got " + std::to_string(num_generations));
  if (!(temperature > 0)) fail("--temperature must be > 0 for rollouts");
  if (max_completion_length < 1) fail("--max-completion-length must be >= 1");
  if (beta < 0) fail("--beta must be >= 0");
  if (!(epsilon >= 0 && epsilon < 1) || epsilon_high < 0) fail("--epsilon must be in [0, 1) and --epsilon-high >= 0");
  if (num_iterations < 1) fail("--num-iterations must be >= 1");
  if (micro_batch < 1) fail("--micro-batch must be >= 1");
  validate_reward_spec(parse_reward_spec(rewards, max_completion_length, max_completion_length / 4));
  adamw.validate();
}

std::string GrpoOptions::to_json() const {
  return nlohmann::json{{"kind", "grpo"}, {"task", task.name}, {"difficulty", task.difficulty}, {"data", data_path},
                        {"model", model}, {"steps", steps}, {"prompts", prompts_per_step}, {"G", num_generations},
                        {"temperature", temperature}, {"top_p", top_p}, {"top_k", top_k},
                        {"max_completion_length", max_completion_length}, {"beta", beta}, {"epsilon", epsilon},
                        {"epsilon_high", epsilon_high}, {"mu", num_iterations}, {"loss_type", int(loss_type)},
                        {"scale_rewards", int(scale_rewards)}, {"mask_truncated", mask_truncated_completions},
                        {"dynamic_sampling", dynamic_sampling}, {"rewards", rewards}, {"micro_batch", micro_batch},
                        {"lr", adamw.lr}, {"beta1", adamw.beta1}, {"beta2", adamw.beta2},
                        {"weight_decay", adamw.weight_decay}, {"max_grad_norm", adamw.max_grad_norm},
                        {"warmup", warmup}, {"min_lr_ratio", min_lr_ratio}, {"seed", seed}}
      .dump();
}

GrpoResult run_grpo(const GrpoOptions& o) {
  o.validate();
  std::filesystem::create_directories(o.out_dir);
  const std::string ck_path = o.out_dir + "/checkpoint.bin", metrics = o.out_dir + "/metrics.jsonl";
  const GgufFile file = read_gguf(o.model);
  TrainModel policy = import_gguf(file);
  const Tokenizer tok = Tokenizer::from_gguf(file);
  const auto tok_meta = tokenizer_metadata(file);
  const TrainModel reference = policy;  // frozen: the KL anchor
  const RewardSpec spec = parse_reward_spec(o.rewards, o.max_completion_length, o.max_completion_length / 4);
  std::vector<TaskItem> data;
  if (!o.data_path.empty()) data = read_rl_dataset(o.data_path);
  TaskOptions train_task = o.task;
  train_task.split = Split::Train;
  auto item_at = [&](int64_t k) { return data.empty() ? generate_item(train_task, k) : data[size_t(k) % data.size()]; };

  AdamWState adam;
  int64_t start = 0;
  if (o.resume && std::filesystem::exists(ck_path)) {
    const Checkpoint ck = read_checkpoint(ck_path);
    if (ck.kind != "grpo") throw FormatError(ck_path + ": a '" + ck.kind + "' checkpoint, expected a GRPO one");
    if (!(ck.config == policy.config)) throw FormatError(ck_path + ": the checkpoint is from another model");
    if (ck.run_options != o.to_json()) throw FormatError(ck_path + ": the checkpoint was written with other options: " + ck.run_options);
    policy.params = ck.params;
    adam = ck.adam;
    start = ck.step;
  } else {
    std::ofstream(metrics, std::ios::trunc);
  }
  const LrSchedule schedule{.lr = o.adamw.lr, .min_lr = o.adamw.lr * o.min_lr_ratio, .warmup_steps = o.warmup,
                            .total_steps = o.steps};
  const auto engine_model = inference_model(policy, tok);  // its weights are policy.params: it sees every update
  const TokenLossOptions loss_opt{.beta = o.beta, .epsilon = o.epsilon, .epsilon_high = o.epsilon_high};
  const int G = o.num_generations;
  GrpoResult result;
  Progress progress("grpo", o.steps);
  Activations acts;
  std::vector<float> logp, grads;

  for (int64_t step = start; step < o.steps; ++step) {
    GrpoStepStats st{.step = step + 1};
    // 1. Rollouts: every group of the step in one batched decode.
    const auto t_roll = Clock::now();
    std::vector<TaskItem> items;
    std::vector<std::vector<int32_t>> prompts;
    std::vector<PathsOptions> popts;
    for (int p = 0; p < o.prompts_per_step; ++p) {
      items.push_back(item_at(step * o.prompts_per_step + p));
      prompts.push_back(tok.encode(items.back().prompt, true, false));
      popts.push_back({.n = G, .sampling = {.temperature = o.temperature, .top_k = o.top_k, .top_p = o.top_p},
                       .seed = o.seed ^ (0x9e3779b97f4a7c15ull * uint64_t(step + 1)), .path_offset = uint64_t(p) * uint64_t(G),
                       .logprob_temperature = o.temperature});
    }
    ModelRunner runner(*engine_model, kv_positions_for(prompts, G, o.max_completion_length));
    const auto paths = run_paths_batch(runner, prompts, popts, {.max_tokens = o.max_completion_length});
    st.rollout_seconds = since(t_roll);

    // 2. Rewards and advantages.
    std::vector<Rollout> rollouts;
    std::vector<float> rewards;
    size_t gen_tokens = 0;
    for (int p = 0; p < o.prompts_per_step; ++p)
      for (const Path& path : paths[size_t(p)]) {
        Rollout r{.prompt = prompts[size_t(p)], .completion = path.tokens, .rollout_logp = path.logprobs};
        r.reward = compute_rewards(spec, path.text, int(path.tokens.size()), items[size_t(p)]).total;
        r.truncated = path.finish != FinishReason::Eos;
        r.group = p;
        st.accuracy += accuracy_reward(path.text, items[size_t(p)]);
        st.format_rate += format_reward(path.text);
        st.completion_length += double(path.tokens.size());
        gen_tokens += path.tokens.size();
        rewards.push_back(r.reward);
        rollouts.push_back(std::move(r));
      }
    const double n_roll = double(rollouts.size());
    st.accuracy /= n_roll, st.format_rate /= n_roll, st.completion_length /= n_roll;
    st.rollout_tokens_per_s = double(gen_tokens) / std::max(1e-9, st.rollout_seconds);
    for (float r : rewards) st.reward_mean += r / n_roll;
    for (float r : rewards) st.reward_std += (r - st.reward_mean) * (r - st.reward_mean) / std::max(1.0, n_roll - 1);
    st.reward_std = std::sqrt(st.reward_std);
    const std::vector<float> adv = group_advantages(rewards, G, o.scale_rewards);
    std::vector<const Rollout*> used;
    for (int p = 0; p < o.prompts_per_step; ++p) {
      bool all_equal = true;
      for (int i = 1; i < G; ++i) all_equal = all_equal && rewards[size_t(p * G + i)] == rewards[size_t(p * G)];
      if (o.dynamic_sampling && all_equal) continue;  // DAPO: no signal in this group
      ++st.groups_used;
      for (int i = 0; i < G; ++i) {
        rollouts[size_t(p * G + i)].advantage = adv[size_t(p * G + i)];
        used.push_back(&rollouts[size_t(p * G + i)]);
      }
    }

    // 3. The policy update: old and reference log-probs, then mu optimizer steps.
    const auto t_train = Clock::now();
    std::vector<std::vector<const Rollout*>> micro;
    for (size_t i = 0; i < used.size(); i += size_t(o.micro_batch))
      micro.emplace_back(used.begin() + ptrdiff_t(i), used.begin() + ptrdiff_t(std::min(used.size(), i + size_t(o.micro_batch))));
    int64_t total_tokens = 0;
    for (const Rollout* r : used)
      if (!(o.mask_truncated_completions && r->truncated)) total_tokens += int64_t(r->completion.size());
    std::vector<std::vector<SequenceLoss>> seqs(micro.size());
    for (size_t m = 0; m < micro.size(); ++m) {
      const TrainBatch b = rollout_batch(micro[m], tok.eos());
      forward_train(policy, b, acts, logp, o.temperature);
      for (size_t i = 0; i < micro[m].size(); ++i) {
        const Rollout& r = *micro[m][i];
        SequenceLoss s{.logp = {}, .old_logp = completion_logp(logp, b, i, r), .ref_logp = {}, .advantage = r.advantage,
                       .masked = o.mask_truncated_completions && r.truncated};
        for (size_t t = 0; t < r.completion.size(); ++t)
          st.rollout_vs_train_logp = std::max(st.rollout_vs_train_logp, double(std::fabs(r.rollout_logp[t] - s.old_logp[t])));
        seqs[m].push_back(std::move(s));
      }
      if (o.beta > 0) {
        forward_train(reference, b, acts, logp, o.temperature);
        for (size_t i = 0; i < micro[m].size(); ++i) seqs[m][i].ref_logp = completion_logp(logp, b, i, *micro[m][i]);
      }
    }
    for (int it = 0; it < o.num_iterations && !used.empty(); ++it) {
      grads.assign(policy.params.size(), 0.0f);
      for (size_t m = 0; m < micro.size(); ++m) {
        const TrainBatch b = rollout_batch(micro[m], tok.eos());
        forward_train(policy, b, acts, logp, o.temperature);
        for (size_t i = 0; i < micro[m].size(); ++i) seqs[m][i].logp = completion_logp(logp, b, i, *micro[m][i]);
        std::vector<std::vector<float>> dseq;
        const LossStats ls = grpo_micro_batch_loss(seqs[m], o.loss_type, loss_opt, o.max_completion_length, total_tokens,
                                                   int(micro.size()), dseq);
        if (it == 0) {
          st.loss += ls.loss;
          st.kl += ls.kl * double(ls.tokens) / double(std::max<int64_t>(1, total_tokens));
          st.clip_fraction += ls.clip_fraction * double(ls.tokens) / double(std::max<int64_t>(1, total_tokens));
        }
        std::vector<float> dlogp(size_t(b.B) * size_t(b.T), 0.0f);
        for (size_t i = 0; i < micro[m].size(); ++i) {
          const size_t first = micro[m][i]->prompt.size() - 1;
          for (size_t t = 0; t < dseq[i].size(); ++t) dlogp[i * size_t(b.T) + first + t] = dseq[i][t];
        }
        backward_train(policy, b, acts, dlogp, grads);
      }
      st.grad_norm = clip_grad_norm(grads, o.adamw.max_grad_norm);
      adamw_step(policy, grads, adam, o.adamw, schedule.at(step));
    }
    st.train_seconds = since(t_train);
    result.steps.push_back(st);
    append_jsonl(metrics, {{"step", st.step}, {"reward_mean", st.reward_mean}, {"reward_std", st.reward_std},
                           {"accuracy", st.accuracy}, {"format_rate", st.format_rate},
                           {"completion_length", st.completion_length}, {"loss", st.loss}, {"kl", st.kl},
                           {"clip_fraction", st.clip_fraction}, {"grad_norm", st.grad_norm},
                           {"rollout_seconds", st.rollout_seconds}, {"train_seconds", st.train_seconds},
                           {"rollout_tokens_per_s", st.rollout_tokens_per_s}, {"groups_used", st.groups_used},
                           {"rollout_vs_train_logp", st.rollout_vs_train_logp}});
    if (!o.quiet) {
      char status[128];
      std::snprintf(status, sizeof status, "reward %.3f acc %.2f fmt %.2f len %.0f", st.reward_mean, st.accuracy,
                    st.format_rate, st.completion_length);
      progress.update(step + 1 - start, status);
    }
    auto save = [&] {
      write_checkpoint(ck_path, {.kind = "grpo", .config = policy.config, .params = policy.params, .adam = adam,
                                 .step = step + 1, .run_options = o.to_json(), .extra = {},
                                 .tokenizer = gguf_metadata_bytes(tok_meta)});
    };
    if (o.save_every > 0 && (step + 1) % o.save_every == 0) save();
    if (step + 1 == o.steps) save();
  }
  if (!o.quiet) progress.finish();

  result.model_path = o.out_dir + "/model.gguf";
  export_gguf(policy, tok_meta, result.model_path);
  if (!o.task.name.empty() && o.eval_count > 0) {
    TaskOptions t = o.task;
    t.split = Split::Test;
    const auto items = generate_items(t, o.eval_count);
    const auto model = load_model(result.model_path);
    const EvalResult e = evaluate(*model, items, GreedyOptions{}, {.max_tokens = o.max_completion_length});
    result.eval_accuracy = e.accuracy;
    result.eval_format = e.format_rate;
    append_jsonl(metrics, {{"step", o.steps}, {"eval_accuracy", e.accuracy}, {"eval_format", e.format_rate}});
  }
  // Curves over the whole run (resumed or not), from the metrics file.
  Series reward{.name = "reward"}, acc{.name = "accuracy"}, fmt{.name = "format"}, len{.name = "completion tokens"};
  double roll = 0, train = 0;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("reward_mean")) continue;
    const double x = j["step"];
    reward.x.push_back(x), reward.y.push_back(j["reward_mean"]);
    acc.x.push_back(x), acc.y.push_back(j["accuracy"]);
    fmt.x.push_back(x), fmt.y.push_back(j["format_rate"]);
    len.x.push_back(x), len.y.push_back(j["completion_length"]);
    roll += j["rollout_seconds"].get<double>(), train += j["train_seconds"].get<double>();
  }
  write_svg_chart(o.out_dir + "/grpo_reward.svg", "GRPO: rollout reward, accuracy and format rate", "step", {reward, acc, fmt});
  write_svg_chart(o.out_dir + "/grpo_length.svg", "GRPO: mean completion length (tokens)", "step", {len});
  result.rollout_share = roll / std::max(1e-9, roll + train);
  return result;
}

}  // namespace ponder
