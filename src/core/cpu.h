#pragma once
// The CPU features ponder's kernels can use, detected once at run time (CPUID via the compiler's
// __builtin_cpu_supports), so one binary picks its kernels on the machine it runs on.
#include <string>

namespace ponder {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512vbmi = false;
  // Everything the AVX-512 matmul kernels need (kernels/matmul_x86.cpp).
  bool avx512_kernels() const { return avx2 && fma && f16c && avx512f && avx512bw && avx512vl && avx512vnni; }
  // Everything the AVX2 kernels need.
  bool avx2_kernels() const { return avx2 && fma && f16c; }
};

const CpuFeatures& cpu_features();
// "avx2 fma f16c avx512f ..." (the detected ones), or "none of avx2/fma/f16c/avx512*".
std::string cpu_features_string();

}  // namespace ponder
