// x86 SIMD tiles for matmul (kernels/simd_x86.h: AVX-512 VNNI or AVX2, chosen at run time) for the
// float types, Q8_0 (Q8x8), Q4_0 and IQ4_NL (Q4x8), in matmul_x86_tiles.inc, and the dispatch to
// the other quantized types' tiles (quant_x86_k.cpp, quant_x86_klow.cpp, quant_x86_legacy.cpp).
#include "kernels/matmul_internal.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder::matmul_detail {

#if PONDER_SIMD

#define PONDER_SIMD_FILE "kernels/matmul_x86_tiles.inc"
#include "kernels/simd_x86_each_isa.inc"
#undef PONDER_SIMD_FILE

TileFn simd_tile(const WeightView& w, int nt, SimdLevel level) {
  if (TileFn f = simd_tile_k(w, nt, level)) return f;
  if (TileFn f = simd_tile_klow(w, nt, level)) return f;
  if (TileFn f = simd_tile_legacy(w, nt, level)) return f;
  switch (level) {
    case SimdLevel::Avx512Vnni: return avx512::tile(w, nt);
    case SimdLevel::Avx2: return avx2::tile(w, nt);
    default: return nullptr;
  }
}

#else

TileFn simd_tile(const WeightView&, int, SimdLevel) { return nullptr; }

#endif

}  // namespace ponder::matmul_detail
