// The activation quantizers of kernels/quant.h (Q8_0, Q8_1, Q8_K) with AVX-512 or AVX2 (in
// quant_x86_act_tiles.inc), bitwise equal to quantize_activation_row: the same scale from the same
// exact maximum, the same float products rounded half to even, the same integer sums; the scalar
// steps (the scale, its fp16 rounding) are the portable code's own expressions.
#include "kernels/matmul_internal.h"

#include <cstring>

#include "core/fp16.h"
#include "kernels/quant.h"

namespace ponder::matmul_detail {

#if PONDER_SIMD

#define PONDER_SIMD_FILE "kernels/quant_x86_act_tiles.inc"
#include "kernels/simd_x86_each_isa.inc"
#undef PONDER_SIMD_FILE

bool simd_quantize_activation_row(uint8_t* out, const float* x, int64_t K, GgmlType partner, SimdLevel level) {
  switch (level) {
    case SimdLevel::Avx512Vnni: return avx512::quantize_activation(out, x, K, partner);
    case SimdLevel::Avx2: return avx2::quantize_activation(out, x, K, partner);
    default: return false;
  }
}

#else

bool simd_quantize_activation_row(uint8_t*, const float*, int64_t, GgmlType, SimdLevel) { return false; }

#endif

}  // namespace ponder::matmul_detail
