#include "kernels/fma_peak.h"

#include <omp.h>

#include <chrono>
#include <cmath>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

namespace ponder {

namespace {

volatile float g_sink = 0;
constexpr int kChains = 12;  // > 4-cycle latency x 2 FMA ports on current x86 cores
constexpr int kRounds = 4096;  // fmas per chain between clock reads

// One round of kChains x kRounds fmas; returns FLOPs done. `sink` keeps the chains alive.
double fma_rounds(float& sink) {
#if defined(__AVX512F__)
  __m512 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm512_set1_ps(float(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
  for (int r = 0; r < kRounds; ++r)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  float lanes[16];
  for (int i = 1; i < kChains; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  _mm512_storeu_ps(lanes, acc[0]);
  for (float v : lanes) sink += v;
  return 2.0 * 16 * kChains * kRounds;
#elif defined(__AVX2__) && defined(__FMA__)
  __m256 acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = _mm256_set1_ps(float(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
  for (int r = 0; r < kRounds; ++r)
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float lanes[8];
  for (int i = 1; i < kChains; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  _mm256_storeu_ps(lanes, acc[0]);
  for (float v : lanes) sink += v;
  return 2.0 * 8 * kChains * kRounds;
#else
  float acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = float(i);
  for (int r = 0; r < kRounds; ++r)
    for (int i = 0; i < kChains; ++i) acc[i] = std::fma(acc[i], 0.999999f, 1e-6f);
  for (int i = 0; i < kChains; ++i) sink += acc[i];
  return 2.0 * kChains * kRounds;
#endif
}

}  // namespace

double fma_peak_gflops(int threads, double seconds) {
  using Clock = std::chrono::steady_clock;
  double total = 0;
  float sinks = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total, sinks)
  {
    float sink = 0;
    double flops = 0;
    const auto t0 = Clock::now();
    double elapsed = 0;
    do {
      flops += fma_rounds(sink);
      elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    } while (elapsed < seconds);
    total += flops / elapsed / 1e9;
    sinks += sink;
  }
  g_sink = sinks;  // the chains' results are used: the loops stay
  return total;
}

}  // namespace ponder
