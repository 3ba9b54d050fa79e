#pragma once
// RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight, per row. The sum of squares is accumulated
// in double, as ggml does.
#include <cstdint>

namespace ponder {

// out, x: (T, C); weight: (C). out may alias x.
void rmsnorm_forward(float* out, const float* x, const float* weight, int64_t T, int64_t C, float eps);

// The same, also saving rstd = 1 / sqrt(mean(x^2) + eps) per row for the backward pass. rstd: (T)
void rmsnorm_forward(float* out, float* rstd, const float* x, const float* weight, int64_t T, int64_t C, float eps);

// Backward of out = x * rstd * weight: dx (T, C) += ..., dweight (C) += ..., given dout (T, C).
//   dx_j = rstd * w_j * dout_j - x_j * rstd^3 / C * sum_i(dout_i * w_i * x_i)
void rmsnorm_backward(float* dx, float* dweight, const float* dout, const float* x, const float* weight,
                      const float* rstd, int64_t T, int64_t C);

}  // namespace ponder
