// x86 SIMD tiles for the low-bit k-quants Q2_K, Q3_K and IQ4_XS (kernels/simd_x86.h: AVX-512 VNNI or
// AVX2, chosen at run time), in quant_x86_klow_tiles.inc.
#include "kernels/matmul_internal.h"

#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder::matmul_detail {

#if PONDER_SIMD

#define PONDER_SIMD_FILE "kernels/quant_x86_klow_tiles.inc"
#include "kernels/simd_x86_each_isa.inc"
#undef PONDER_SIMD_FILE

TileFn simd_tile_klow(const WeightView& w, int nt, SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512Vnni: return avx512::tile_klow(w, nt);
    case SimdLevel::Avx2: return avx2::tile_klow(w, nt);
    default: return nullptr;
  }
}

#else

TileFn simd_tile_klow(const WeightView&, int, SimdLevel) { return nullptr; }

#endif

}  // namespace ponder::matmul_detail
