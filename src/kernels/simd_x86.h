#pragma once
// The x86 SIMD kernels are compiled for AVX-512 (BW, VL, VNNI) with AVX2, FMA and F16C whatever the
// build's target, and chosen at run time: a binary built for plain x86-64 (PONDER_NATIVE=OFF)
// runs them on a CPU that has the features (cpu_features().avx512_kernels()) and the portable
// path elsewhere. Code between PONDER_SIMD_BEGIN and PONDER_SIMD_END is compiled for those
// features; only functions defined there may use them, and they run only after have_simd().
// Headers are included before PONDER_SIMD_BEGIN, so their inline functions and templates keep the
// build's own target (a copy the linker keeps never holds instructions the CPU may lack).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PONDER_SIMD 1
#include <immintrin.h>
#if defined(__clang__)
#define PONDER_SIMD_BEGIN                                                                                  \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni\"))), \
apply_to = function)")
#define PONDER_SIMD_END _Pragma("clang attribute pop")
#else
#define PONDER_SIMD_BEGIN \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni\")")
#define PONDER_SIMD_END _Pragma("GCC pop_options")
#endif
#else
#define PONDER_SIMD 0
#endif
