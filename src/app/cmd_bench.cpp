// ponder bench: prompt processing (pp) and generation (tg) tokens/s, like llama-bench, plus the
// generation speed as a fraction of the memory-bandwidth bound measured on this machine.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <omp.h>

#include "app/commands.h"
#include "core/error.h"
#include "core/rng.h"
#include "model/forward.h"
#include "model/model.h"

namespace ponder::app {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct BenchArgs {
  std::string model;
  int n_prompt = 512, n_gen = 128, threads = 0, reps = 3;
  bool json = false;
};

// Read bandwidth: all threads sum a 1 GiB array; the best of a few passes.
double measure_read_bandwidth_gb_s() {
  const size_t n = (size_t(1) << 30) / sizeof(uint64_t);
  std::vector<uint64_t> a(n);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) a[i] = i;
  double best = 0;
  volatile uint64_t sink = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = Clock::now();
    uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t i = 0; i < n; ++i) total += a[i];
    const double s = seconds_since(t0);
    sink = sink + total;
    best = std::max(best, double(n * sizeof(uint64_t)) / s / 1e9);
  }
  return best;
}

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

void run_bench(const BenchArgs& a) {
  set_threads(a.threads);
  if (a.n_prompt < 1 || a.n_gen < 1 || a.reps < 1) throw InvalidArgument("-p, -n and -r must be >= 1");
  const auto m = load_model(a.model);
  const ModelConfig& c = m->config;
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
  auto run_tg = [&] {
    KvSeq seq;
    int32_t tok = prompt[0];
    const auto t0 = Clock::now();
    for (int i = 0; i < a.n_gen; ++i) {
      BatchItem item{.seq = &seq, .tokens = {&tok, 1}, .logits = LogitsFor::Last};
      forward(*m, pool, {&item, 1}, st, logits);
      tok = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    }
    const double s = seconds_since(t0);
    pool.release(seq);
    return s;
  };
  run_pp();  // warm-up: page in the weights, size the buffers
  double pp = 0, tg = 0;
  for (int r = 0; r < a.reps; ++r) pp += run_pp();
  for (int r = 0; r < a.reps; ++r) tg += run_tg();
  const double pp_tok_s = a.n_prompt * a.reps / pp, tg_tok_s = a.n_gen * a.reps / tg;
  const double bytes = weight_bytes_per_token(*m);
  const double bw = measure_read_bandwidth_gb_s();
  const double bound = bw * 1e9 / bytes;
  const int threads = omp_get_max_threads();
  if (a.json) {
    const nlohmann::json out = {{"model", a.model},        {"threads", threads},
                                {"n_prompt", a.n_prompt},  {"n_gen", a.n_gen},
                                {"reps", a.reps},          {"pp_tok_s", pp_tok_s},
                                {"tg_tok_s", tg_tok_s},    {"weight_bytes_per_token", bytes},
                                {"read_bandwidth_gb_s", bw}, {"tg_bound_tok_s", bound},
                                {"tg_fraction_of_bound", tg_tok_s / bound}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  std::printf("model: %s (%s, %.1f MiB of weights read per token), %d threads\n", a.model.c_str(),
              std::string(c.arch->name).c_str(), bytes / (1 << 20), threads);
  std::printf("pp%-5d %10.1f tok/s\n", a.n_prompt, pp_tok_s);
  std::printf("tg%-5d %10.1f tok/s  (%.0f%% of the %.1f tok/s bound at the measured %.1f GB/s read bandwidth)\n",
              a.n_gen, tg_tok_s, 100 * tg_tok_s / bound, bound, bw);
}

}  // namespace

void add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Prompt processing and generation speed (like llama-bench pp/tg)");
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("-m,--model", a->model, "GGUF model file")->required();
  cmd->add_option("-p,--n-prompt", a->n_prompt, "prompt tokens processed in one batch");
  cmd->add_option("-n,--n-gen", a->n_gen, "tokens generated one at a time");
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("-r,--repetitions", a->reps, "repetitions of each test");
  cmd->add_flag("--json", a->json, "print the figures as JSON");
  cmd->callback([a] { run_bench(*a); });
}

}  // namespace ponder::app
