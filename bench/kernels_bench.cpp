// Kernel micro-benchmarks (Google Benchmark): matmul per weight type at decode (T=1), 8-path (T=8)
// and prompt (T=512) shapes of Qwen2-0.5B and 1.5B layers, 28 layers' matrices in turn (the
// weight stream from memory as decode sees it), attention over a growing context.
// Run: build/ponder_bench_kernels [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <cmath>
#include <omp.h>
#include <span>
#include <utility>
#include <vector>

#include "core/rng.h"
#include "kernels/attention.h"
#include "kernels/gemm.h"
#include "kernels/matmul.h"
#include "kernels/quant.h"
#include "kernels/quantize.h"

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
    if (quant_type(type))
      quantize_row(w.rows.data() + n * rb, row.data(), K, type);
    else
      convert_row(w.rows.data() + n * rb, row.data(), K, type);
  }
  // As load_model sets them up: llama.cpp's 8-row orders where it has them, the SIMD layouts.
  const QuantType* q = quant_type(type);
  w.view = WeightView{.type = type, .data = w.rows.data(), .n_rows = N, .n_cols = K,
                      .order = q && has_x8_order(*q) && N % 8 == 0 ? DotOrder::Interleaved8 : DotOrder::Row};
  w.repacked = repack_for_kernels(w.view);
  return w;
}

// matmul of a (type, T, N, K) case with the kernels of a level (skipped above the CPU's), the T
// tokens alone (decode paths) or one chunk (a prompt: llama.cpp's gemm / panel orders where a type
// has them).
void run_matmul(benchmark::State& state, SimdLevel level, bool one_chunk = false) {
  const auto type = GgmlType(state.range(0));
  const int64_t T = state.range(1), N = state.range(2), K = state.range(3);
  if (level > simd_level()) return state.SkipWithError("this CPU has no such kernels");
  const Weights w = make_weights(type, N, K);
  std::vector<float> x(size_t(T * K)), y(size_t(T * N));
  Rng rng(2);
  for (float& v : x) v = float(rng.normal());
  PackedActivations p;
  const int32_t chunk[1] = {int32_t(T)};
  pack_activations(p, x.data(), T, K, type, one_chunk ? std::span<const int32_t>(chunk) : std::span<const int32_t>());
  for (auto _ : state) {
    matmul_at(y.data(), N, p, w.view, level);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GMAC/s"] = benchmark::Counter(double(T * N * K), benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
  state.counters["weight_GB/s"] = benchmark::Counter(double(N * ggml_row_size(type, K)),
                                                     benchmark::Counter::kIsIterationInvariantRate);
}

// args: type, T, N, K
void BM_Matmul(benchmark::State& state) { run_matmul(state, simd_level()); }
BENCHMARK(BM_Matmul)
    ->ArgNames({"type", "T", "N", "K"})
    ->Args({int(GgmlType::Q8_0), 1, 151936, 896})   // LM head, decode
    ->Args({int(GgmlType::Q8_0), 8, 151936, 896})   // LM head, 8 paths
    ->Args({int(GgmlType::Q8_0), 512, 4864, 896})   // FFN up, prompt
    ->Args({int(GgmlType::Q8_0), 512, 896, 4864})   // FFN down, prompt
    ->Args({int(GgmlType::F32), 512, 4864, 896})
    ->Args({int(GgmlType::F16), 1, 151936, 896})
    // Qwen2-1.5B Q4_K_M: FFN up/gate (Q4_K), FFN down and LM head (Q6_K)
    ->Args({int(GgmlType::Q4_K), 1, 8960, 1536})
    ->Args({int(GgmlType::Q4_K), 8, 8960, 1536})
    ->Args({int(GgmlType::Q4_K), 512, 8960, 1536})
    ->Args({int(GgmlType::Q4_K), 1, 65536, 1536})  // too big for the caches: streams from memory
    ->Args({int(GgmlType::Q4_K), 1, 512, 1536})    // in L2: the compute rate
    ->Args({int(GgmlType::Q4_K), 8, 512, 1536})    // in L2: the compute rate at 8 paths
    ->Args({int(GgmlType::Q6_K), 1, 1536, 8960})
    ->Args({int(GgmlType::Q6_K), 512, 1536, 8960})
    ->Args({int(GgmlType::Q6_K), 1, 151936, 1536})
    ->Args({int(GgmlType::Q6_K), 1, 512, 1536})  // in L2: the compute rate
    ->Args({int(GgmlType::Q6_K), 8, 512, 1536})  // in L2: the compute rate at 8 paths
    ->Args({int(GgmlType::Q6_K), 8, 151936, 1536})
    // Qwen2-0.5B Q4_K_M: FFN up/gate (Q5_0, K = 896 is not a multiple of 256)
    ->Args({int(GgmlType::Q5_0), 1, 4864, 896})
    ->Args({int(GgmlType::Q5_0), 512, 4864, 896})
    ->Args({int(GgmlType::Q5_0), 1, 131072, 896})  // streams from memory
    // The low-bit k-quants at Qwen2-1.5B's FFN up/gate shape, 1 and 8 paths (tokens alone: the 8-row
    // gemv order for Q2_K, the one-row order for Q3_K and IQ4_XS)
    ->Args({int(GgmlType::Q2_K), 1, 8960, 1536})
    ->Args({int(GgmlType::Q2_K), 8, 8960, 1536})
    ->Args({int(GgmlType::Q3_K), 1, 8960, 1536})
    ->Args({int(GgmlType::Q3_K), 8, 8960, 1536})
    ->Args({int(GgmlType::IQ4_XS), 1, 8960, 1536})
    ->Args({int(GgmlType::IQ4_XS), 8, 8960, 1536})
    ->Args({int(GgmlType::Q2_K), 1, 65536, 1536})  // past the private caches: streams
    ->Args({int(GgmlType::Q3_K), 1, 65536, 1536})
    ->Args({int(GgmlType::IQ4_XS), 1, 65536, 1536})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The same matmul at each SIMD level (0 portable, 1 AVX2, 2 AVX-512 VNNI), for comparing them: 1
// and 8 tokens alone, and 8 as one chunk (Q2_K's gemm order, IQ4_XS's panel order).
// args: type, T, N, K, level, chunk (0: tokens alone, 1: one chunk)
void BM_MatmulAt(benchmark::State& state) { run_matmul(state, SimdLevel(state.range(4)), state.range(5) != 0); }
void matmul_at_args(benchmark::internal::Benchmark* b) {
  for (const GgmlType type : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::IQ4_XS})
    for (const auto& [T, chunk] : {std::pair{1, 0}, std::pair{8, 0}, std::pair{8, 1}})
      for (const SimdLevel level : {SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512Vnni})
        b->Args({int(type), T, 8960, 1536, int(level), chunk});
}
BENCHMARK(BM_MatmulAt)
    ->ArgNames({"type", "T", "N", "K", "level", "chunk"})
    ->Apply(matmul_at_args)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A decode step's pattern: 28 matrices of one FFN shape run one after another (more bytes than
// the caches hold), the T tokens alone, so the figure is the weight stream's rate from memory as
// a model's layers see it (one large matrix streams faster than many of this size).
// args: type, T, N, K
void BM_MatmulLayers(benchmark::State& state) {
  const auto type = GgmlType(state.range(0));
  const int64_t T = state.range(1), N = state.range(2), K = state.range(3);
  constexpr int kLayers = 28;
  std::vector<Weights> layers;
  for (int l = 0; l < kLayers; ++l) layers.push_back(make_weights(type, N, K));
  std::vector<float> x(size_t(T * K)), y(size_t(T * N));
  Rng rng(2);
  for (float& v : x) v = float(rng.normal());
  PackedActivations p;
  pack_activations(p, x.data(), T, K, type, {});
  for (auto _ : state) {
    for (const Weights& w : layers) matmul(y.data(), N, p, w.view);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["weight_GB/s"] = benchmark::Counter(double(kLayers * N * ggml_row_size(type, K)),
                                                     benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_MatmulLayers)
    ->ArgNames({"type", "T", "N", "K"})
    ->Args({int(GgmlType::Q4_K), 1, 8960, 1536})  // Qwen2-1.5B FFN up/gate
    ->Args({int(GgmlType::Q4_K), 4, 8960, 1536})
    ->Args({int(GgmlType::Q4_K), 8, 8960, 1536})
    ->Args({int(GgmlType::Q6_K), 1, 1536, 8960})  // FFN down
    ->Args({int(GgmlType::Q8_0), 1, 4864, 896})   // Qwen2-0.5B FFN up/gate
    ->Args({int(GgmlType::Q8_0), 8, 4864, 896})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_Attention(benchmark::State& state) {
  const int n_ctx = int(state.range(0)), H = 14, Hkv = 2, D = 64;
  std::vector<float> q(size_t(H * D)), k(size_t(n_ctx * Hkv * D)), v(k.size()), out(q.size()), scores(attention_scratch_floats(n_ctx, D, H / Hkv));
  Rng rng(3);
  for (auto* vec : {&q, &k, &v})
    for (float& x : *vec) x = float(rng.normal());
  const float* kp[1] = {k.data()};
  const float* vp[1] = {v.data()};
  const KvBlocks kv{.k = kp, .v = vp, .block_size = n_ctx, .n_ctx = n_ctx};
  for (auto _ : state) {
    attention_forward(out.data(), q.data(), kv, H, Hkv, D, 0.125f, AttentionOrder::OneToken, scores.data());
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_Attention)->Arg(128)->Arg(512)->Arg(2048)->Unit(benchmark::kMicrosecond);

// sgemm on the training shapes (dim 256, ffn 768, vocab 512, 16 x 256 = 4096 tokens).
// args: trans_a, trans_b, M, N, K, beta.
void BM_Sgemm(benchmark::State& state) {
  const bool ta = state.range(0) != 0, tb = state.range(1) != 0;
  const int64_t M = state.range(2), N = state.range(3), K = state.range(4);
  const float beta = float(state.range(5));
  std::vector<float> a(size_t(M * K)), b(size_t(K * N)), c(size_t(M * N));
  Rng rng(4);
  for (auto* vec : {&a, &b, &c})
    for (float& x : *vec) x = float(rng.normal());
  for (auto _ : state) {
    sgemm(ta, tb, M, N, K, 1.f, a.data(), ta ? M : K, b.data(), tb ? K : N, beta, c.data(), N);
    benchmark::DoNotOptimize(c.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * double(M * N * K), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_Sgemm)
    ->ArgNames({"ta", "tb", "M", "N", "K", "beta"})
    // forward Y = X W^T (N = 512 is also the LM head)
    ->Args({0, 1, 4096, 256, 256, 0})
    ->Args({0, 1, 4096, 512, 256, 0})
    ->Args({0, 1, 4096, 768, 256, 0})
    ->Args({0, 1, 4096, 1536, 256, 0})
    ->Args({0, 1, 4096, 256, 768, 0})
    // backward dX = dY W
    ->Args({0, 0, 4096, 256, 256, 0})
    ->Args({0, 0, 4096, 256, 512, 0})
    ->Args({0, 0, 4096, 256, 768, 0})
    ->Args({0, 0, 4096, 256, 1536, 0})
    ->Args({0, 0, 4096, 768, 256, 0})
    // weights dW += dY^T X
    ->Args({1, 0, 256, 256, 4096, 1})
    ->Args({1, 0, 512, 256, 4096, 1})
    ->Args({1, 0, 768, 256, 4096, 1})
    ->Args({1, 0, 1536, 256, 4096, 1})
    ->Args({1, 0, 256, 768, 4096, 1})
    // few rows
    ->Args({0, 1, 1, 768, 256, 0})
    ->Args({0, 1, 16, 768, 256, 0})
    ->Args({0, 0, 16, 256, 768, 0})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

// The attention GEMMs as the training code calls them: one single-threaded call per (sequence,
// head) inside an OpenMP loop, on head slices of (B*T, C) activations (row stride C). 16 sequences
// of T = 256, 8 heads of D = 32. arg: 0 = S = Q K^T into a stored P per (sequence, head);
// 1 = O = P V with P a per-thread scratch (just written by softmax); 2 = dV += P^T dO.
void BM_SgemmAttention(benchmark::State& state) {
  const int which = int(state.range(0));
  const int64_t B = 16, H = 8, T = 256, D = 32, C = H * D;
  std::vector<float> q(size_t(B * T * C)), k(q.size()), v(q.size()), out(q.size()), p(size_t(B * H * T * T));
  std::vector<float> scratch(size_t(omp_get_max_threads() * T * T));
  Rng rng(5);
  for (auto* vec : {&q, &k, &v, &out, &p, &scratch})
    for (float& x : *vec) x = float(rng.normal());
  for (auto _ : state) {
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        const size_t slice = size_t(b * T * C + h * D);
        float* P = p.data() + size_t((b * H + h) * T * T);
        if (which == 0) {
          sgemm(false, true, T, T, D, 0.17f, q.data() + slice, C, k.data() + slice, C, 0.f, P, T);
        } else if (which == 1) {
          const float* S = scratch.data() + size_t(omp_get_thread_num() * T * T);
          sgemm(false, false, T, D, T, 1.f, S, T, v.data() + slice, C, 0.f, out.data() + slice, C);
        } else {
          sgemm(true, false, T, D, T, 1.f, P, T, q.data() + slice, C, 1.f, out.data() + slice, C);
        }
      }
    benchmark::DoNotOptimize(out.data());
    benchmark::DoNotOptimize(p.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(2e-9 * double(B * H * T * T * D), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_SgemmAttention)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace ponder

BENCHMARK_MAIN();
