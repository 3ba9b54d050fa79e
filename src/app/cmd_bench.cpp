// ponder bench: prompt processing (pp) and generation (tg) tokens/s, like llama-bench, plus the
// generation speed as a fraction of the memory-bandwidth bound measured on this machine.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "app/bench_train.h"
#include "app/commands.h"
#include "core/error.h"
#include "core/rng.h"
#include "decode/generate.h"
#include "decode/model_runner.h"
#include "kernels/matmul.h"
#include "model/forward.h"
#include "model/model.h"

namespace ponder::app {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct BenchArgs {
  std::string model;
  int n_prompt = 512, n_gen = 128, threads = 0, reps = 3;
  bool json = false, e2e = false;
  std::vector<int> paths;  // --paths 1,2,4,8,16: multi-path decode steps
  bool train = false, rollouts = false;
  TrainBenchArgs train_args;
  RolloutBenchArgs rollout_args;
};

// Read bandwidth: all threads sum a 256 MiB array (8 independent sums per thread, so the loop is
// bound by loads, not by an add chain). A machine that shares its memory sees its bandwidth drift by
// tens of percent within seconds, so the bench samples it between generation steps (untimed) and
// divides by the mean of those samples: the bound it prints is what memory gave in the same seconds.
struct BandwidthProbe {
  std::vector<uint64_t> a = std::vector<uint64_t>((size_t(256) << 20) / sizeof(uint64_t));
  double sum_gb_s = 0;
  int samples = 0;
  BandwidthProbe() {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < a.size(); ++i) a[i] = i;
  }
  void sample() {
    static volatile uint64_t sink = 0;
    const size_t n = a.size() / 8 * 8;
    const auto t0 = Clock::now();
    uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; i += 8) {
      uint64_t s[8];
      for (int j = 0; j < 8; ++j) s[j] = a[i + j];
      total += ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    }
    const double sec = seconds_since(t0);
    sink = sink + total;
    sum_gb_s += double(n * sizeof(uint64_t)) / sec / 1e9;
    ++samples;
  }
  double mean_gb_s() const { return samples ? sum_gb_s / samples : 0; }
};

// Bytes of weights one decode step reads: every matrix, the LM head, and one embedding row.
double weight_bytes_per_token(const Model& m) {
  double bytes = 0;
  const ModelWeights& w = m.weights;
  auto mat = [](const WeightView& v) { return double(v.row_bytes()) * double(v.n_rows); };
  for (const LayerWeights& l : w.layers)
    bytes += mat(l.attn_q) + mat(l.attn_k) + mat(l.attn_v) + mat(l.attn_output) + mat(l.ffn_gate) + mat(l.ffn_up) +
             mat(l.ffn_down);
  return bytes + mat(w.output) + double(w.token_embd.row_bytes());
}

std::string kernel_paths_line(const Model& m) {
  std::string line;
  for (const auto& [type, path] : kernel_paths(m)) line += (line.empty() ? "" : ", ") + type + ": " + path;
  return line;
}

// k paths forked from one shared prompt, all decoded in one batch per step.
nlohmann::json bench_paths(const Model& m, const BenchArgs& a, const std::vector<int32_t>& prompt) {
  nlohmann::json rows = nlohmann::json::array();
  for (int k : a.paths) {
    if (k < 1) throw InvalidArgument("--paths: every count must be >= 1, got " + std::to_string(k));
    ModelRunner runner(m, kv_positions_for(a.n_prompt, 1, k, a.n_gen));
    std::vector<float> logits;
    double best = 1e300;
    for (int r = 0; r < a.reps; ++r) {
      const SeqId root = runner.new_sequence();
      const StepInput pre{.seq = root, .tokens = prompt};
      runner.step({&pre, 1}, logits);
      std::vector<SeqId> seqs = {root};
      for (int i = 1; i < k; ++i) seqs.push_back(runner.fork(root));
      std::vector<int32_t> toks(static_cast<size_t>(k));
      std::vector<StepInput> in(static_cast<size_t>(k));
      const auto t0 = Clock::now();
      for (int s = 0; s < a.n_gen; ++s) {
        for (int i = 0; i < k; ++i) {
          toks[size_t(i)] = int32_t((s * 31 + i * 17 + 7) % m.config.n_vocab);  // distinct paths
          in[size_t(i)] = {.seq = seqs[size_t(i)], .tokens = {&toks[size_t(i)], 1}};
        }
        runner.step(in, logits);
      }
      best = std::min(best, seconds_since(t0));
      for (SeqId q : seqs) runner.release(q);
    }
    const double step_ms = best / a.n_gen * 1e3;
    rows.push_back({{"paths", k}, {"step_ms", step_ms}, {"tok_s", k * a.n_gen / best}});
  }
  const double base = rows.empty() ? 1.0 : rows[0]["step_ms"].get<double>();
  for (auto& r : rows) r["step_cost_vs_first"] = r["step_ms"].get<double>() / base;
  return rows;
}

// Whole requests: greedy, beam 4 and sample n=8 for n_gen tokens (no early stop on EOS).
nlohmann::json bench_strategies(const Model& m, const BenchArgs& a, const std::vector<int32_t>& prompt) {
  const std::vector<std::pair<std::string, Strategy>> strategies = {
      {"greedy", GreedyOptions{}},
      {"beam4", BeamOptions{.num_beams = 4, .num_return = 1, .length_penalty = 1.0f, .early_stopping = EarlyStopping::Never}},
      {"sample8", SampleOptions{.n = 8, .sampling = {.temperature = 0.8f}, .seed = 1}},
  };
  nlohmann::json rows = nlohmann::json::array();
  double greedy_s = 0;
  for (const auto& [name, strategy] : strategies) {
    ModelRunner runner(m, kv_positions_for(a.n_prompt, 1, n_paths(strategy), a.n_gen));
    const auto t0 = Clock::now();
    const GenerateResult r = generate(runner, {.prompt = prompt, .strategy = strategy, .stop = {.max_tokens = a.n_gen}});
    const double s = seconds_since(t0);
    if (name == "greedy") greedy_s = s;
    size_t tokens = 0;
    for (const Path& p : r.paths) tokens += p.tokens.size();
    rows.push_back({{"strategy", name},
                    {"seconds", s},
                    {"vs_greedy", s / greedy_s},
                    {"tokens_returned", tokens},
                    {"tokens_generated", r.tokens_generated}});
  }
  return rows;
}

void run_bench(const BenchArgs& a) {
  set_threads(a.threads);
  if (a.train + a.rollouts + (!a.paths.empty() || a.e2e) > 1)
    throw InvalidArgument("give at most one of --train, --rollouts and --paths/--e2e");
  if (a.train) {
    TrainBenchArgs t = a.train_args;
    t.model = a.model;
    t.json = a.json;
    t.steps = a.reps;
    return run_train_bench(t);
  }
  if (a.model.empty()) throw InvalidArgument("-m FILE is required (except with --train)");
  if (a.rollouts) {
    RolloutBenchArgs r = a.rollout_args;
    r.model = a.model;
    r.json = a.json;
    r.max_tokens = a.n_gen;
    return run_rollout_bench(r);
  }
  for (const auto& [flag, v] : {std::pair{"-p", a.n_prompt}, std::pair{"-n", a.n_gen}, std::pair{"-r", a.reps}})
    if (v < 1) throw InvalidArgument(std::string(flag) + " must be >= 1, got " + std::to_string(v));
  const auto m = load_model(a.model);
  const ModelConfig& c = m->config;
  // Speed only: past the trained context the tokens mean nothing, but the cost is still measured.
  const int64_t longest = (!a.paths.empty() || a.e2e) ? int64_t(a.n_prompt) + a.n_gen : std::max(a.n_prompt, a.n_gen);
  if (longest > c.n_ctx_train)
    std::fprintf(stderr, "ponder: note: %lld positions run past the model's context of %d (speed figures only)\n",
                 (long long)longest, c.n_ctx_train);
  Rng rng(1234);
  std::vector<int32_t> prompt(size_t(a.n_prompt));
  for (int32_t& t : prompt) t = int32_t(rng.below(uint64_t(c.n_vocab)));
  const int block = 16;
  const int n_ctx = std::max(a.n_prompt, a.n_gen + 1);
  KvPool pool(c.n_layer, c.kv_dim(), block, (n_ctx + block - 1) / block + 1);
  ForwardState st;
  std::vector<float> logits;

  auto run_pp = [&] {
    KvSeq seq;
    BatchItem item{.seq = &seq, .tokens = prompt, .logits = LogitsFor::Last};
    const auto t0 = Clock::now();
    forward(*m, pool, {&item, 1}, st, logits);
    const double s = seconds_since(t0);
    pool.release(seq);
    return s;
  };
  // Generation: only the steps are timed; with a probe, memory bandwidth is sampled every 16 steps.
  auto run_tg = [&](BandwidthProbe* probe) {
    KvSeq seq;
    int32_t tok = prompt[0];
    double s = 0;
    for (int i = 0; i < a.n_gen; ++i) {
      if (probe && i % 16 == 0) probe->sample();
      const auto t0 = Clock::now();
      BatchItem item{.seq = &seq, .tokens = {&tok, 1}, .logits = LogitsFor::Last};
      forward(*m, pool, {&item, 1}, st, logits);
      tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
      s += seconds_since(t0);
    }
    if (probe) probe->sample();
    pool.release(seq);
    return s;
  };
  if (!a.paths.empty() || a.e2e) {
    std::vector<int32_t> short_prompt(prompt.begin(), prompt.begin() + a.n_prompt);
    run_pp();  // warm-up
    nlohmann::json out = nlohmann::json::object();
    if (!a.paths.empty()) out["paths"] = bench_paths(*m, a, short_prompt);
    if (a.e2e) out["strategies"] = bench_strategies(*m, a, short_prompt);
    if (a.json) {
      std::printf("%s\n", (a.e2e ? out : out["paths"]).dump(2).c_str());
      return;
    }
    std::printf("model: %s, %d threads, shared prompt %d tokens, %d decode steps\n", a.model.c_str(),
                omp_get_max_threads(), a.n_prompt, a.n_gen);
    std::printf("kernels: %s\n", kernel_paths_line(*m).c_str());
    for (const auto& r : out.value("paths", nlohmann::json::array()))
      std::printf("paths %3d: %8.2f ms/step (%.2fx one path)  %8.1f tok/s aggregate\n", r["paths"].get<int>(),
                  r["step_ms"].get<double>(), r["step_cost_vs_first"].get<double>(), r["tok_s"].get<double>());
    for (const auto& r : out.value("strategies", nlohmann::json::array()))
      std::printf("%-8s %8.2f s  (%.2fx greedy)\n", r["strategy"].get<std::string>().c_str(), r["seconds"].get<double>(),
                  r["vs_greedy"].get<double>());
    return;
  }
  run_pp();  // warm-up: page in the weights, size the buffers
  double pp = 0, tg = 0;
  for (int r = 0; r < a.reps; ++r) pp += run_pp();
  BandwidthProbe probe;
  for (int r = 0; r < a.reps; ++r) tg += run_tg(&probe);
  const double pp_tok_s = a.n_prompt * a.reps / pp, tg_tok_s = a.n_gen * a.reps / tg;
  const double bytes = weight_bytes_per_token(*m);
  const double bw = probe.mean_gb_s();
  const double bound = bw * 1e9 / bytes;
  const int threads = omp_get_max_threads();
  if (a.json) {
    const nlohmann::json out = {{"model", a.model},        {"threads", threads},
                                {"n_prompt", a.n_prompt},  {"n_gen", a.n_gen},
                                {"reps", a.reps},          {"pp_tok_s", pp_tok_s},
                                {"tg_tok_s", tg_tok_s},    {"weight_bytes_per_token", bytes},
                                {"read_bandwidth_gb_s", bw}, {"tg_bound_tok_s", bound},
                                {"tg_fraction_of_bound", tg_tok_s / bound}, {"kernels", kernel_paths(*m)}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("model: %s (%s, %.1f MiB of weights read per token), %d threads\n", a.model.c_str(),
              std::string(c.arch->name).c_str(), bytes / (1 << 20), threads);
  std::printf("kernels: %s\n", kernel_paths_line(*m).c_str());
  std::printf("pp%-5d %10.1f tok/s\n", a.n_prompt, pp_tok_s);
  std::printf("tg%-5d %10.1f tok/s  (%.0f%% of the %.1f tok/s bound at the %.1f GB/s read bandwidth measured between the steps)\n",
              a.n_gen, tg_tok_s, 100 * tg_tok_s / bound, bound, bw);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Prompt processing and generation speed (like llama-bench pp/tg)");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model file, required except with --train");
  cmd->add_option("-p,--n-prompt", a->n_prompt, "prompt tokens processed in one batch");
  cmd->add_option("-n,--n-gen", a->n_gen, "tokens generated one at a time");
  cmd->add_option("-t,--threads", a->threads, "threads (0: all cores)");
  cmd->add_option("-r,--repetitions", a->reps, "repetitions of each test");
  cmd->add_flag("--json", a->json, "print the figures as JSON");
  cmd->add_option("--paths", a->paths,
                  "multi-path decode: k paths forked from one prompt per k, e.g. 1,2,4,8,16 (default: none)")
      ->delimiter(',');
  cmd->add_flag("--e2e", a->e2e, "whole requests: greedy vs beam 4 vs sample n=8 for -n tokens");
  cmd->add_flag("--train", a->train,
                "training step (forward + backward + AdamW) of a train preset or of -m FILE on random tokens; -r steps");
  cmd->add_option("--preset", a->train_args.preset, "--train: the model preset (tiny, small, 5m); or -m FILE");
  cmd->add_option("--batch", a->train_args.batch, "--train: sequences per step");
  cmd->add_option("--ctx", a->train_args.ctx, "--train: tokens per sequence");
  cmd->add_option("--lora-rank", a->train_args.lora_rank,
                  "--train: LoRA adapters of this rank (alpha 2 x rank) on every block matrix, the base frozen (0: full)");
  cmd->add_flag("--rollouts", a->rollouts,
                "GRPO rollouts from -m: all groups batched vs one path at a time (-n max tokens)");
  cmd->add_option("--task", a->rollout_args.task, "--rollouts: task of the prompts");
  cmd->add_option("--difficulty", a->rollout_args.difficulty, "--rollouts: task difficulty");
  cmd->add_option("--prompts", a->rollout_args.prompts, "--rollouts: prompts (GRPO prompts per step)");
  cmd->add_option("--group", a->rollout_args.group, "--rollouts: completions per prompt (GRPO's G)");
  cmd->add_option("--temp", a->rollout_args.temperature, "--rollouts: sampling temperature");
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace ponder::app
