#pragma once
// The x86 SIMD kernels are compiled twice whatever the build's target: for AVX-512 (BW, VL, VNNI)
// and for AVX2 (with FMA and F16C), and one of the two is chosen at run time by CPUID
// (simd_level() in kernels/matmul.h); a CPU with neither runs the portable path. So a binary built
// for plain x86-64 (PONDER_NATIVE=OFF) runs the best kernels the machine has.
//
// A kernel file writes its kernels once, in a file included once per instruction set
// (kernels/simd_x86_each_isa.inc, the pattern of Highway's foreach_target): each copy lands in its
// own namespace (avx512 or avx2) inside a region compiled for that set, where PONDER_AVX512 says
// which one it is. Headers are included before those regions, so their inline functions and
// templates keep the build's own target (a copy the linker keeps never holds instructions the CPU
// may lack).
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PONDER_SIMD 1
#include <immintrin.h>
#if defined(__clang__)
#define PONDER_SIMD_BEGIN_AVX512                                                                           \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni\"))), \
apply_to = function)")
#define PONDER_SIMD_BEGIN_AVX2 \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma,f16c\"))), apply_to = function)")
#define PONDER_SIMD_END _Pragma("clang attribute pop")
#else
#define PONDER_SIMD_BEGIN_AVX512 \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni\")")
#define PONDER_SIMD_BEGIN_AVX2 _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma,f16c\")")
#define PONDER_SIMD_END _Pragma("GCC pop_options")
#endif
#else
#define PONDER_SIMD 0
#endif
