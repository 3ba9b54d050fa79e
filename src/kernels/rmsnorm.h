#pragma once
// RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight, per row. The sum of squares is accumulated
// in double, as ggml does.
#include <cstdint>

namespace ponder {

// out, x: (T, C); weight: (C). out may alias x.
void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t T, int64_t C, float eps);

}  // namespace ponder
