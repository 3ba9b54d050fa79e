#include "train/grpo_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "decode/model_runner.h"
#include "decode/paths.h"
#include "train/dist.h"

namespace ponder {

namespace {

// The training batch of a micro-batch of rollouts: prompt + completion, targets on the completion.
// (B, T) with T the longest sequence minus one, right-padded with `pad`.
TrainBatch rollout_batch(std::span<const Rollout> rs, int32_t pad) {
  TrainBatch b{.B = int(rs.size()), .T = 1};
  for (const Rollout& r : rs) b.T = std::max(b.T, int(r.prompt.size() + r.completion.size()) - 1);
  b.tokens.assign(size_t(b.B) * size_t(b.T), pad);
  b.targets.assign(b.tokens.size(), -1);
  for (size_t i = 0; i < rs.size(); ++i) {
    std::vector<int32_t> seq = rs[i].prompt;
    seq.insert(seq.end(), rs[i].completion.begin(), rs[i].completion.end());
    for (size_t t = 0; t + 1 < seq.size(); ++t) {
      b.tokens[i * size_t(b.T) + t] = seq[t];
      if (t + 1 >= rs[i].prompt.size()) b.targets[i * size_t(b.T) + t] = seq[t + 1];
    }
  }
  return b;
}

// The completion-token log-probs of row i of a forward's per-position logp (B, T).
std::vector<float> completion_logp(const std::vector<float>& logp, int T, size_t i, const Rollout& r) {
  const auto first = logp.begin() + ptrdiff_t(i * size_t(T) + r.prompt.size() - 1);
  return std::vector<float>(first, first + ptrdiff_t(r.completion.size()));
}

bool masked(const Rollout& r, const GrpoOptions& o) { return o.mask_truncated_completions && r.truncated; }

// The step-wide counts every micro-batch's loss is normalised by.
LossNormaliser step_counts(std::span<const Rollout> batch, const GrpoOptions& o) {
  LossNormaliser n{.n_sequences = int64_t(batch.size()), .n_tokens = 0,
                   .max_completion_length = o.max_completion_length};
  for (const Rollout& r : batch)
    if (!masked(r, o)) n.n_tokens += int64_t(r.completion.size());
  return n;
}

}  // namespace

TaskItem PromptSource::at(int64_t k) const {
  return format.apply(data.empty() ? generate_item(task, k) : data[size_t(k % int64_t(data.size()))]);
}

uint64_t rollout_seed(uint64_t seed, int64_t step, int batch) {
  return seed ^ (0x9e3779b97f4a7c15ull * uint64_t(step + 1)) ^ (0xd1b54a32d192ed03ull * uint64_t(batch));
}

std::vector<Rollout> generate_rollouts(const Model& engine, std::span<const TaskItem> items, const GrpoOptions& o,
                                       uint64_t seed, size_t first, size_t last) {
  const int G = o.num_generations;
  last = std::min(last, items.size());
  std::vector<std::vector<int32_t>> prompts;
  std::vector<PathsOptions> popts;
  size_t longest = 0;
  for (size_t p = 0; p < items.size(); ++p) {
    const std::vector<int32_t> ids = engine.tokenizer.encode(items[p].prompt, true, true);
    longest = std::max(longest, ids.size());
    if (p < first || p >= last) continue;
    prompts.push_back(ids);
    popts.push_back({.n = G, .sampling = {.temperature = o.temperature, .top_k = o.top_k, .top_p = o.top_p},
                     .seed = seed, .path_offset = uint64_t(p) * uint64_t(G), .on_token = {},
                     .logprob_temperature = o.temperature});
  }
  std::vector<Rollout> out;
  if (prompts.empty()) return out;
  // A completion stops at the model's context (the training forward holds prompt + completion).
  const int max_tokens = max_tokens_within_context(o.max_completion_length, int64_t(longest), engine.config.n_ctx_train);
  ModelRunner runner(engine, kv_positions_for(prompts, G, max_tokens));
  const auto paths = run_paths_batch(runner, prompts, popts, {.max_tokens = max_tokens});
  for (size_t p = 0; p < prompts.size(); ++p)
    for (const Path& path : paths[p])
      out.push_back({.prompt = prompts[p], .completion = path.tokens, .rollout_logp = path.logprobs, .old_logp = {},
                     .ref_logp = {}, .text = path.text, .truncated = path.finish != FinishReason::Eos,
                     .group = int(first + p)});
  return out;
}

namespace {

// Raw host-order bytes: they only travel between the ranks of one job (the same build).
template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}
template <typename T>
void put_vector(std::string& out, const std::vector<T>& v) {
  put(out, uint64_t(v.size()));
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

struct Reader {
  const std::string& bytes;
  size_t pos = 0;
  void take(void* dst, size_t n) {
    if (n > bytes.size() - pos)
      throw FormatError("rollouts from another rank: " + std::to_string(bytes.size()) + " bytes end inside a record (at " +
                        std::to_string(pos) + ", " + std::to_string(n) + " more needed)");
    if (n > 0) std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  }
  template <typename T>
  T get() {
    T v;
    take(&v, sizeof v);
    return v;
  }
  template <typename T>
  std::vector<T> get_vector() {
    const uint64_t n = get<uint64_t>();
    if (n > (bytes.size() - pos) / sizeof(T))
      throw FormatError("rollouts from another rank: a vector of " + std::to_string(n) + " items in " +
                        std::to_string(bytes.size() - pos) + " bytes");
    std::vector<T> v(n);
    take(v.data(), n * sizeof(T));
    return v;
  }
};

}  // namespace

std::string pack_rollouts(std::span<const Rollout> rollouts) {
  std::string out;
  put(out, uint64_t(rollouts.size()));
  for (const Rollout& r : rollouts) {
    put_vector(out, r.prompt);
    put_vector(out, r.completion);
    put_vector(out, r.rollout_logp);
    put(out, uint64_t(r.text.size()));
    out += r.text;
    put(out, r.reward), put(out, r.accuracy), put(out, r.format);
    put(out, uint8_t(r.truncated)), put(out, int32_t(r.group));
  }
  return out;
}

void unpack_rollouts(const std::string& bytes, std::vector<Rollout>& out) {
  Reader in{bytes};
  const uint64_t n = in.get<uint64_t>();
  for (uint64_t i = 0; i < n; ++i) {
    Rollout r;
    r.prompt = in.get_vector<int32_t>();
    r.completion = in.get_vector<int32_t>();
    r.rollout_logp = in.get_vector<float>();
    const std::vector<char> text = in.get_vector<char>();
    r.text.assign(text.begin(), text.end());
    r.reward = in.get<float>(), r.accuracy = in.get<float>(), r.format = in.get<float>();
    r.truncated = in.get<uint8_t>() != 0;
    r.group = in.get<int32_t>();
    out.push_back(std::move(r));
  }
  if (in.pos != bytes.size())
    throw FormatError("rollouts from another rank: " + std::to_string(bytes.size() - in.pos) + " bytes after the last record");
}

std::pair<size_t, size_t> my_groups(size_t n) {
  const size_t R = size_t(dist().size), r = size_t(dist().rank);
  return {n * r / R, n * (r + 1) / R};
}

void score_rollouts(std::span<Rollout> rollouts, std::span<const TaskItem> items, const RewardSpec& spec) {
  for (Rollout& r : rollouts) {
    const TaskItem& item = items[size_t(r.group)];
    r.reward = compute_rewards(spec, r.text, int(r.completion.size()), item).total;
    r.accuracy = accuracy_reward(r.text, item, spec.countdown_division);
    r.format = format_reward(r.text, item.style);
  }
}

void rollout_stats(std::span<const Rollout> generated, GrpoStepStats& st) {
  const double n = double(std::max<size_t>(1, generated.size()));
  double reward_sum = 0;
  for (const Rollout& r : generated) {
    reward_sum += r.reward;
    st.accuracy += r.accuracy / n;
    st.format_rate += r.format / n;
    st.completion_length += double(r.completion.size()) / n;
  }
  st.reward_mean = reward_sum / n;
  double ss = 0;
  for (const Rollout& r : generated) ss += (r.reward - st.reward_mean) * (r.reward - st.reward_mean);
  st.reward_std = std::sqrt(ss / std::max(1.0, n - 1));
}

void keep_groups(std::vector<Rollout>& rollouts, const GrpoOptions& o, std::vector<Rollout>& kept) {
  const size_t G = size_t(o.num_generations), want = size_t(o.prompts_per_step) * G;
  for (size_t g0 = 0; g0 + G <= rollouts.size() && kept.size() < want; g0 += G) {
    bool all_equal = true;
    for (size_t i = 1; i < G; ++i) all_equal = all_equal && rollouts[g0 + i].reward == rollouts[g0].reward;
    if (o.dynamic_sampling && all_equal) continue;  // DAPO: no signal in this group
    for (size_t i = 0; i < G; ++i) kept.push_back(std::move(rollouts[g0 + i]));
  }
}

void set_advantages(std::span<Rollout> batch, const GrpoOptions& o) {
  std::vector<float> rewards;
  for (const Rollout& r : batch) rewards.push_back(r.reward);
  const std::vector<float> adv = group_advantages(rewards, o.num_generations, o.scale_rewards);
  for (size_t i = 0; i < batch.size(); ++i) batch[i].advantage = adv[i];
}

LossStats policy_gradient(const TrainModel& policy, const TrainModel* reference, std::span<Rollout> batch,
                          int iteration, const GrpoOptions& o, UpdateScratch& s, const LoraAdapters* lora) {
  const LossNormaliser norm = step_counts(batch, o);
  const TokenLossOptions loss_opt{.beta = o.beta, .epsilon = o.epsilon, .epsilon_high = o.epsilon_high};
  const int32_t pad = 0;  // padded positions have no target: their log-probs are never read
  const size_t mb = size_t(o.micro_batch);
  const int64_t n_micro = int64_t((batch.size() + mb - 1) / mb);
  // Each micro-batch's LossStats (loss, kl_sum, clipped, tokens), set by the rank that computes it.
  std::vector<double> parts(size_t(n_micro) * 4, 0.0);
  GradientSum sum(s.grads, lora ? lora->params.size() : policy.params.size(), n_micro);
  for (int64_t round = 0; round < sum.rounds(); ++round) {
    const int64_t a = sum.micro(round);
    if (a < 0) {
      sum.reduce(round);
      continue;
    }
    const size_t m0 = size_t(a) * mb;
    const std::span<Rollout> micro = batch.subspan(m0, std::min(mb, batch.size() - m0));
    const TrainBatch b = rollout_batch(micro, pad);
    if (iteration == 0 && reference != nullptr) {  // before the policy's forward: backward reads its activations
      forward_train(*reference, b, s.acts, s.logp, o.temperature);
      for (size_t i = 0; i < micro.size(); ++i) micro[i].ref_logp = completion_logp(s.logp, b.T, i, micro[i]);
    }
    forward_train(policy, b, s.acts, s.logp, o.temperature, lora);
    std::vector<SequenceLoss> seqs;
    for (size_t i = 0; i < micro.size(); ++i) {
      Rollout& r = micro[i];
      SequenceLoss q{.logp = completion_logp(s.logp, b.T, i, r), .old_logp = {}, .ref_logp = r.ref_logp,
                     .advantage = r.advantage, .masked = masked(r, o)};
      if (iteration == 0) r.old_logp = q.logp;  // the weights have not moved yet: old = current
      q.old_logp = r.old_logp;
      seqs.push_back(std::move(q));
    }
    std::vector<std::vector<float>> dseq;
    const LossStats ls = grpo_micro_batch_loss(seqs, o.loss_type, loss_opt, norm, dseq);
    double* part = parts.data() + size_t(a) * 4;
    part[0] = ls.loss, part[1] = ls.kl_sum, part[2] = double(ls.clipped), part[3] = double(ls.tokens);
    s.dlogp.assign(size_t(b.B) * size_t(b.T), 0.0f);
    for (size_t i = 0; i < micro.size(); ++i)
      std::copy(dseq[i].begin(), dseq[i].end(), s.dlogp.begin() + ptrdiff_t(i * size_t(b.T) + micro[i].prompt.size() - 1));
    backward_train(policy, b, s.acts, s.dlogp, sum.buffer(round), lora);
    sum.reduce(round);
  }
  sum.finish();
  dist_collect(parts);
  LossStats total;  // the micro-batches' shares in order, as one process adds them
  for (int64_t a = 0; a < n_micro; ++a) {
    const double* part = parts.data() + size_t(a) * 4;
    total += LossStats{.loss = part[0], .kl_sum = part[1], .clipped = int64_t(part[2]), .tokens = int64_t(part[3])};
  }
  return total;
}

UpdateStats update_policy(TrainModel& policy, const TrainModel* reference, std::span<Rollout> batch,
                          const GrpoOptions& o, AdamWState& adam, float lr, UpdateScratch& s, LoraAdapters* lora) {
  UpdateStats u;
  const double mu = double(o.num_iterations);
  for (int it = 0; it < o.num_iterations; ++it) {
    const LossStats ls = policy_gradient(policy, reference, batch, it, o, s, lora);
    u.loss += ls.loss / mu, u.kl += ls.kl() / mu, u.clip_fraction += ls.clip_fraction() / mu;
    const double norm = grad_norm(s.grads), clip = clip_coefficient(norm, o.adamw.max_grad_norm);
    u.grad_norm += norm / mu;
    if (lora) adamw_step(lora->layout, lora->params, s.grads, adam, o.adamw, lr, clip);
    else adamw_step(policy, s.grads, adam, o.adamw, lr, clip);
  }
  for (const Rollout& r : batch)  // old_logp is set on the rank that trains the rollout
    for (size_t t = 0; t < r.old_logp.size(); ++t)
      u.rollout_vs_train_logp = std::max(u.rollout_vs_train_logp, double(std::fabs(r.rollout_logp[t] - r.old_logp[t])));
  u.rollout_vs_train_logp = dist_max(u.rollout_vs_train_logp);
  return u;
}

}  // namespace ponder
