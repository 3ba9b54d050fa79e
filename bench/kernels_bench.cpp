// Kernel micro-benchmarks (Google Benchmark): matmul per weight type at decode (T=1) and prompt
// (T=512) shapes of a Qwen2-0.5B layer, attention over a growing context.
// Run: build/ponder_bench_kernels [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"

namespace ponder {
namespace {

struct Weights {
  std::vector<uint8_t> rows, repacked;
  WeightView view;
};

Weights make_weights(GgmlType type, int64_t N, int64_t K) {
  Weights w;
  Rng rng(1);
  const int64_t rb = ggml_row_size(type, K);
  w.rows.resize(size_t(N * rb));
  std::vector<float> row(static_cast<size_t>(K));
  for (int64_t n = 0; n < N; ++n) {
    for (float& x : row) x = float(rng.normal()) * 0.02f;
    convert_row(w.rows.data() + n * rb, row.data(), K, type);
  }
  w.view = WeightView{.type = type, .data = w.rows.data(), .n_rows = N, .n_cols = K};
  if (type == GgmlType::Q8_0) {
    w.repacked = repack_q8x8(w.view);
    w.view.data = w.repacked.data();
    w.view.layout = WeightLayout::Q8x8;
  }
  return w;
}

// args: type, T, N, K
void BM_Matmul(benchmark::State& state) {
  const auto type = GgmlType(state.range(0));
  const int64_t T = state.range(1), N = state.range(2), K = state.range(3);
  const Weights w = make_weights(type, N, K);
  std::vector<float> x(size_t(T * K)), y(size_t(T * N));
  Rng rng(2);
  for (float& v : x) v = float(rng.normal());
  PackedActivations p;
  pack_activations(p, x.data(), T, K, type);
  for (auto _ : state) {
    matmul(y.data(), N, p, w.view);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(double(T * N * K), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  state.counters["weight_GB/s"] = benchmark::Counter(double(N * ggml_row_size(type, K)),
                                                     benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Matmul)
    ->ArgNames({"type", "T", "N", "K"})
    ->Args({int(GgmlType::Q8_0), 1, 151936, 896})   // LM head, decode
    ->Args({int(GgmlType::Q8_0), 8, 151936, 896})   // LM head, 8 paths
    ->Args({int(GgmlType::Q8_0), 512, 4864, 896})   // FFN up, prompt
    ->Args({int(GgmlType::Q8_0), 512, 896, 4864})   // FFN down, prompt
    ->Args({int(GgmlType::F32), 512, 4864, 896})
    ->Args({int(GgmlType::F16), 1, 151936, 896})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Attention(benchmark::State& state) {
  const int n_ctx = int(state.range(0)), H = 14, Hkv = 2, D = 64;
  std::vector<float> q(size_t(H * D)), k(size_t(n_ctx * Hkv * D)), v(k.size()), out(q.size()), scores(static_cast<size_t>(n_ctx));
  Rng rng(3);
  for (auto* vec : {&q, &k, &v})
    for (float& x : *vec) x = float(rng.normal());
  const float* kp[1] = {k.data()};
  const float* vp[1] = {v.data()};
  const KvBlocks kv{.k = kp, .v = vp, .block_size = n_ctx, .n_ctx = n_ctx};
  for (auto _ : state) {
    attention_forward(out.data(), q.data(), kv, H, Hkv, D, 0.125f, scores.data());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Attention)->Arg(128)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond);

// sgemm on the training shapes (dim 256, ffn 768, vocab 512, 16 x 256 = 4096 tokens).
// args: trans_a, trans_b, M, N, K, beta, batch. batch > 1 runs that many independent calls in an
// OpenMP loop (attention: one call per (sequence, head), each single-threaded inside the region).
void BM_Sgemm(benchmark::State& state) {
  const bool ta = state.range(0) != 0, tb = state.range(1) != 0;
  const int64_t M = state.range(2), N = state.range(3), K = state.range(4), batch = state.range(6);
  const float beta = float(state.range(5));
  std::vector<float> a(size_t(batch * M * K)), b(size_t(batch * K * N)), c(size_t(batch * M * N));
  Rng rng(4);
  for (auto* vec : {&a, &b, &c})
    for (float& x : *vec) x = float(rng.normal());
  const int64_t lda = ta ? M : K, ldb = tb ? K : N;
  for (auto _ : state) {
    if (batch == 1) {
      sgemm(ta, tb, M, N, K, 1.f, a.data(), lda, b.data(), ldb, beta, c.data(), N);
    } else {
#pragma omp parallel for schedule(dynamic, 1)
      for (int64_t i = 0; i < batch; ++i)
        sgemm(ta, tb, M, N, K, 1.f, a.data() + i * M * K, lda, b.data() + i * K * N, ldb, beta, c.data() + i * M * N, N);
    }
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * double(batch * M * N * K), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Sgemm)
    ->ArgNames({"ta", "tb", "M", "N", "K", "beta", "batch"})
    // forward Y = X W^T
    ->Args({0, 1, 4096, 256, 256, 0, 1})
    ->Args({0, 1, 4096, 512, 256, 0, 1})  // also the LM head
    ->Args({0, 1, 4096, 768, 256, 0, 1})
    ->Args({0, 1, 4096, 1536, 256, 0, 1})
    ->Args({0, 1, 4096, 256, 768, 0, 1})
    // backward dX = dY W
    ->Args({0, 0, 4096, 256, 256, 0, 1})
    ->Args({0, 0, 4096, 256, 512, 0, 1})
    ->Args({0, 0, 4096, 256, 768, 0, 1})
    ->Args({0, 0, 4096, 256, 1536, 0, 1})
    ->Args({0, 0, 4096, 768, 256, 0, 1})
    // weights dW += dY^T X
    ->Args({1, 0, 256, 256, 4096, 1, 1})
    ->Args({1, 0, 512, 256, 4096, 1, 1})
    ->Args({1, 0, 768, 256, 4096, 1, 1})
    ->Args({1, 0, 1536, 256, 4096, 1, 1})
    ->Args({1, 0, 256, 768, 4096, 1, 1})
    // attention per (sequence, head): Q K^T and P V, 16 sequences x 8 heads
    ->Args({0, 1, 256, 256, 32, 0, 128})
    ->Args({0, 0, 256, 32, 256, 0, 128})
    // small M
    ->Args({0, 1, 1, 768, 256, 0, 1})
    ->Args({0, 1, 16, 768, 256, 0, 1})
    ->Args({0, 0, 16, 256, 768, 0, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace ponder

BENCHMARK_MAIN();
