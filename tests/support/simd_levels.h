#pragma once
// The matmul kernel levels this CPU runs (kernels/matmul.h), portable first: the tests hold every
// level's kernels to the portable path, so an AVX-512 machine checks its AVX2 kernels too.
#include <cstdio>
#include <vector>

#include "kernels/matmul.h"

namespace ponder {

inline std::vector<SimdLevel> simd_levels() {
  std::vector<SimdLevel> levels = {SimdLevel::Portable};
  if (simd_level() >= SimdLevel::Avx2) levels.push_back(SimdLevel::Avx2);
  if (simd_level() >= SimdLevel::Avx512Vnni) levels.push_back(SimdLevel::Avx512Vnni);
  if (levels.size() == 1) std::printf("[ note ] no SIMD kernels on this build or CPU: checking the portable path only\n");
  return levels;
}

}  // namespace ponder
